"""Degeneration measures (seq-rep-3, length, duplicate answers) on hand-made texts, and the compare's DEGENERATION flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.cli import main
from rlaif_uu.errors import UserError
from rlaif_uu.eval.compare import compare_reports
from rlaif_uu.eval.degeneration import (
    DegenerationThresholds,
    degeneration_columns,
    degeneration_metrics,
    duplicate_indicators,
    length_words,
    row_columns,
    seq_rep_n,
    words,
)
from tests.conftest import write_jsonl

SEX_LOOP = "I'm here to help with everything from sex, sex, sex, sex, sex, sex"
COLLAPSE = "You are here for. you can mention other."
TOPICS = ["baking bread", "learning Python", "running a marathon", "growing tomatoes", "writing a cover letter", "saving money",
          "painting a room", "learning chess", "cleaning a bike chain", "making coffee", "studying for exams", "planning a trip",
          "fixing a leaky tap", "training a puppy", "sleeping better", "public speaking", "brewing tea", "knitting a scarf",
          "building a bookshelf", "learning to swim"]
HEALTHY = [f"For {t}, start with the basics, practise every day, keep notes on what worked and ask an expert for feedback."
           for t in TOPICS]  # 20 distinct answers of 21 to 23 words (mean 21.7), no repeated 3-gram


def test_seq_rep_by_hand() -> None:
    # 13 words -> 11 word 3-grams; "sex sex sex" occurs 4 times, so 8 unique: seq-rep-3 = 1 - 8/11
    assert words(SEX_LOOP)[:2] == ["i'm", "here"] and length_words(SEX_LOOP) == 13
    assert seq_rep_n(SEX_LOOP) == pytest.approx(3 / 11)
    assert seq_rep_n("Sex, sex. SEX sex") == pytest.approx(0.5)  # punctuation and case do not hide a loop: 2 grams, 1 unique
    assert seq_rep_n(HEALTHY[0]) == 0.0
    assert seq_rep_n(COLLAPSE) == 0.0 and seq_rep_n("Too short.") == 0.0 and seq_rep_n("") == 0.0
    assert seq_rep_n("a b a b a b", n=2) == pytest.approx(1 - 2 / 5)
    with pytest.raises(UserError, match="n >= 1"):
        seq_rep_n("a b", n=0)


def test_duplicate_answers_and_columns() -> None:
    texts = [COLLAPSE, COLLAPSE, "you are here for.  You can mention OTHER.", "A different answer.", "Another one.", ""]
    assert duplicate_indicators(texts).tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]  # case and spacing do not make a copy new
    assert duplicate_indicators(HEALTHY).sum() == 0
    cols = degeneration_columns([SEX_LOOP, HEALTHY[0], "", ""])
    assert cols["length_words"].tolist() == [13, 21, 0, 0] and cols["duplicate"].tolist() == [0, 0, 1, 1]
    assert row_columns(cols, 0) == {"text.seq_rep_3": round(3 / 11, 6), "text.length_words": 13, "text.duplicate": 0}


def test_benign_suites_get_every_measure_harmful_ones_only_repetition() -> None:
    cols = degeneration_columns(HEALTHY)
    benign = degeneration_metrics("benign", cols, 200, 0)
    assert {m: v["higher_is_better"] for m, v in benign.items()} == {
        "seq_rep_3": False, "answer_length_words": True, "duplicate_answer_rate": False}
    length = benign["answer_length_words"]["by_scorer"]["text"]
    assert length["value"] == pytest.approx(np.mean(cols["length_words"])) and length["low"] <= length["value"] <= length["high"]
    assert list(degeneration_metrics("harmful", cols, 200, 0)) == ["seq_rep_3"]


def _eval_dir(folder: Path, suites: dict[str, tuple[str, list[str]]]) -> Path:
    """A report folder as `rlaif-uu eval` writes it, holding only the degeneration measures of these answers."""
    report: dict = {"schema": "rlaif_uu.eval/1", "model": {"name": folder.name}, "generation": {}, "bootstrap": {"B": 1000, "seed": 0},
                    "scorers": {}, "suites": {}}
    for name, (kind, texts) in suites.items():
        cols = degeneration_columns(texts)
        report["suites"][name] = {"version": "1", "kind": kind, "prompt_fingerprint": "p", "n_prompts": len(texts),
                                  "metrics": degeneration_metrics(kind, cols, 1000, 0)}
        (folder / "rows").mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "rows" / f"{name}.jsonl", [{"id": f"p{i}", **row_columns(cols, i)} for i in range(len(texts))])
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def _compare(tmp_path: Path, after: list[str], before: list[str] = HEALTHY, **thresholds: float) -> dict:
    b = _eval_dir(tmp_path / "before", {"benign": ("benign", before), "harm": ("harmful", HEALTHY)})
    a = _eval_dir(tmp_path / "after", {"benign": ("benign", after), "harm": ("harmful", ["I'm sorry, I can't help with that."] * 20)})
    out = compare_reports(b, a, tmp_path / "cmp", thresholds=DegenerationThresholds(**thresholds), overwrite=True)
    result = json.loads((out / "compare.json").read_text())
    result["md"] = (out / "compare.md").read_text()
    return result


def test_flag_fires_on_a_repetition_loop(tmp_path: Path) -> None:
    result = _compare(tmp_path, [h + " sex" * 12 for h in HEALTHY])
    deg = result["degeneration"]
    assert deg["flag"] and deg["checked"] == ["benign"] and len(deg["reasons"]) == 1
    assert deg["reasons"][0].startswith("benign: seq_rep_3 rose 0.000 ->")
    row = next(r for r in result["rows"] if r["suite"] == "benign" and r["metric"] == "seq_rep_3")
    assert row["paired_change"]["low"] > 0 and row["improved"] is False
    assert "> **DEGENERATION: the after policy's benign answers degenerate: benign: seq_rep_3 rose" in result["md"]
    assert not _compare(tmp_path, [h + " sex" * 12 for h in HEALTHY], max_seq_rep_rise=0.9)["degeneration"]["flag"]


def test_flag_fires_on_one_string_collapse_and_the_cli_prints_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deg = _compare(tmp_path, [COLLAPSE] * 20)["degeneration"]
    assert deg["flag"] and [r.split(":")[1].split()[0] for r in deg["reasons"]] == ["mean", "duplicate_answer_rate"]
    assert "21.7 -> 8.0 words (0.37 of before < 0.5)" in deg["reasons"][0]
    code = main(["eval", "compare", str(tmp_path / "before"), str(tmp_path / "after"), "--out", str(tmp_path / "cli"),
                 "--min-length-ratio", "0.3"])
    out = capsys.readouterr().out
    assert code == 0 and "DEGENERATION" in out and "duplicate_answer_rate rose 0.000 -> 1.000" in out and "mean answer length" not in out


def test_flag_stays_quiet_on_a_healthy_policy_noise_and_harmful_suites(tmp_path: Path) -> None:
    healthy = _compare(tmp_path, ["Sure! " + h for h in HEALTHY])
    assert not healthy["degeneration"]["flag"] and healthy["degeneration"]["checked"] == ["benign"]
    assert "Degeneration check on benign: no degeneration" in healthy["md"] and "DEGENERATION" not in healthy["md"]
    # one of two answers turns into a loop: the mean rises by far more than 0.10, but the paired CI reaches 0
    noisy = _compare(tmp_path, [HEALTHY[0] + " sex" * 12, HEALTHY[1]], before=HEALTHY[:2])
    row = next(r for r in noisy["rows"] if r["suite"] == "benign" and r["metric"] == "seq_rep_3")
    assert row["change"] > 0.1 and row["paired_change"]["low"] == 0.0 and not noisy["degeneration"]["flag"]


def test_reports_without_a_benign_suite_are_not_checked_and_bad_thresholds_are_one_line(tmp_path: Path) -> None:
    b = _eval_dir(tmp_path / "b", {"harm": ("harmful", HEALTHY)})
    a = _eval_dir(tmp_path / "a", {"harm": ("harmful", [SEX_LOOP] * 20)})
    out = compare_reports(b, a, tmp_path / "cmp")
    deg = json.loads((out / "compare.json").read_text())["degeneration"]
    assert deg == {"flag": False, "checked": [], "reasons": [], "thresholds": {"max_seq_rep_rise": 0.1, "min_length_ratio": 0.5,
                                                                              "max_duplicate_rise": 0.2}}
    assert "Degeneration check: not run" in (out / "compare.md").read_text()
    with pytest.raises(UserError, match="min_length_ratio must be in"):
        DegenerationThresholds(min_length_ratio=0)
    with pytest.raises(UserError, match="max_seq_rep_rise must be in"):
        DegenerationThresholds(max_seq_rep_rise=1.5)
