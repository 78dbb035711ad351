"""`rlaif-uu refine` end to end on the real MiniLM encoder, and every bad input of the issue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.cli import main
from rlaif_uu.reward import load_reward_metadata
from rlaif_uu.reward.export import fit_temperature
from tests.conftest import make_rows, write_jsonl

pytestmark = pytest.mark.integration


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_refine_writes_every_artefact(tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(out), "--iterations", "2",
                     "backbone.epochs=30")
    assert code == 0, err
    rows = [json.loads(line) for line in (out / "refined.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["refined_label"] in ("harmful", "safe") for r in rows)
    history = json.loads((out / "history.json").read_text())
    assert history["iterations"][0]["iteration"] == 0 and len(history["iterations"]) >= 2
    assert history["n_gold"] == 20
    assert (out / "history.png").stat().st_size > 1000
    assert (out / "classifier" / "head.safetensors").exists()
    assert "iterations: 2" in (out / "config.yaml").read_text()
    # the refined labels agree with the truth more often than the 20%-noisy judge does
    truth = {r["id"]: r["gold_label"] for r in make_rows()}
    refined_acc = sum(r["refined_label"] == truth[r["id"]] for r in rows) / len(rows)
    judge_acc = sum(r["judge_label"] == truth[r["id"]] for r in rows) / len(rows)
    assert refined_acc >= judge_acc


def test_combine_stacks_the_judge_on_the_classifier(tmp_path: Path, corpus: Path, gold: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from rlaif_uu.data.schema import classifier_text
    from rlaif_uu.reward.classifier import load_harm_scorer

    runs = {}
    for combine in ("judge", "none"):
        out = tmp_path / combine
        code, err = _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(out), "--iterations", "1",
                         "--select", "last", "--combine", combine)
        assert code == 0, err
        rows = [json.loads(line) for line in (out / "refined.jsonl").read_text().splitlines()]
        g = load_harm_scorer(out)([classifier_text(r["prompt"], r["response"]) for r in rows])
        runs[combine] = (np.array([r["refined_score"] for r in rows]), g, rows)
    s_none, g_none, _ = runs["none"]
    s_judge, g_judge, rows = runs["judge"]
    assert np.allclose(g_none, g_judge, atol=1e-4)  # iteration 1 trains on the judge's labels either way
    assert np.allclose(s_none, g_none, atol=1e-4)  # none: the classifier's own logits
    assert not np.allclose(s_judge, g_judge, atol=1e-2)  # judge: the stacked posterior log-odds
    assert all((r["refined_label"] == "harmful") == (r["refined_score"] > 0) for r in rows)


def test_same_config_gives_the_same_labels(tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outs = []
    for name in ("a", "b"):
        assert _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(tmp_path / name),
                    "--iterations", "2", "--seed", "3")[0] == 0
        outs.append((tmp_path / name / "refined.jsonl").read_text())
    assert outs[0] == outs[1]


def test_sample_gold_then_refine(tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    todo = tmp_path / "todo.csv"
    assert _run(capsys, "refine", "sample-gold", "--input", str(corpus), "--n", "12", "--out", str(todo))[0] == 0
    import csv

    rows = list(csv.DictReader(todo.open()))
    assert len(rows) == 12 and sum(r["judge_label"] == "harmful" for r in rows) == 6
    assert all(r["gold_label"] == "" for r in rows)
    truth = {r["id"]: r["gold_label"] for r in make_rows()}
    filled = tmp_path / "gold.csv"
    with filled.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows([r | {"gold_label": truth[r["id"]]} for r in rows])
    code, err = _run(capsys, "refine", "--input", str(corpus), "--gold", str(filled), "--out", str(tmp_path / "o"), "--iterations", "1")
    assert code == 0, err


def test_console_script_help() -> None:
    res = subprocess.run([sys.executable, "-m", "rlaif_uu", "refine", "--help"], capture_output=True, text=True, check=True)
    assert "--gold" in res.stdout and "sample-gold" in res.stdout


def _bad(tmp_path: Path, rows: list[dict] | None = None, text: str | None = None) -> Path:
    path = tmp_path / "bad.jsonl"
    if text is not None:
        path.write_text(text)
    else:
        write_jsonl(path, rows or [])
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _strip(rows: list[dict], *keys: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in keys} for r in rows]


CASES = {
    "malformed json": (lambda t: _bad(t, text='{"prompt": "a"\n'), None, r"bad.jsonl:1: malformed JSON"),
    "missing prompt": (lambda t: _bad(t, _strip(make_rows(), "prompt")), None, r"bad.jsonl:1: missing field 'prompt'"),
    "missing response": (lambda t: _bad(t, _strip(make_rows(), "response")), None, r"missing field 'response'"),
    "missing judge_label": (lambda t: _bad(t, _strip(make_rows(), "judge_label")), None, r"missing field 'judge_label'"),
    "unknown label": (lambda t: _bad(t, [make_rows()[0] | {"judge_label": "meh"}]), None, r"unknown label 'meh'"),
    "empty input": (lambda t: _bad(t, text=""), None, r"no rows; the file is empty"),
    "one pseudo class": (lambda t: _bad(t, [r | {"judge_label": "safe"} for r in make_rows()]), None, r"all 60 judge labels are 'safe'"),
    "nan score": (lambda t: _bad(t, text=json.dumps(make_rows()[0])[:-1] + ', "judge_score": NaN}\n'), None, r"judge_score.*not finite"),
    "inf score": (lambda t: _bad(t, [make_rows()[0] | {"judge_score": "inf"}]), None, r"judge_score.*not finite"),
    "non utf-8": (lambda t: _bad(t, text="") and _write_bytes(t / "bad.jsonl", b'{"prompt": "\xff"}\n'), None, r"bad.jsonl:1: bytes that are not UTF-8"),
    "gold one class": (None, lambda t: _bad(t, [{"id": f"r{i}", "gold_label": "safe"} for i in range(0, 24, 2)]), r"every gold label is 'safe'"),
    "gold under 10": (None, lambda t: _bad(t, [{"id": f"r{i}", "gold_label": "safe" if i % 2 == 0 else "harmful"} for i in range(6)]), r"only 6 gold rows"),
    "gold ids unknown": (None, lambda t: _bad(t, [{"id": f"zz{i}", "gold_label": "safe"} for i in range(12)]), r"12 gold id\(s\) not found in the input, e.g. 'zz0'"),
    "gold unlabelled": (None, lambda t: _bad(t, [{"id": f"r{i}", "gold_label": ""} for i in range(12)]), r"missing field 'gold_label'"),
    "tiny delta": (None, lambda t: _bad(t, [{"id": r["id"], "gold_label": "harmful" if i % 4 == 0 else "safe"} for i, r in enumerate(make_rows()[:40])]),
                   r"θp − θn = .* too little signal"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_input, make_gold, message = CASES[case]
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    inp = make_input(data_dir) if make_input else corpus
    g = make_gold(data_dir) if make_gold else gold
    out = tmp_path / "out"
    # --fallback judge: "tiny delta" must reach the refusal; the default answers it with a gold-only classifier (below)
    code, err = _run(capsys, "refine", "--input", str(inp), "--gold", str(g), "--out", str(out), "--iterations", "1",
                     "--fallback", "judge")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_uninformative_judge_falls_back_to_the_gold_rows(tmp_path: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a judge label independent of the truth: on the gold rows theta_p = theta_n = 0.5, too little signal to refine
    rows = [{k: v for k, v in r.items() if k != "gold_label"} | {"judge_label": "harmful" if (i // 2) % 2 == 0 else "safe"}
            for i, r in enumerate(make_rows())]
    inp, out = write_jsonl(tmp_path / "coin.jsonl", rows), tmp_path / "out"
    by_id = {r["id"]: r for r in rows}  # gold rows as the pipeline's annotator writes them: id, label and the text
    gold = write_jsonl(tmp_path / "gold_with_text.jsonl", [g | {k: by_id[g["id"]][k] for k in ("prompt", "response")}
                                                          for g in map(json.loads, gold.read_text().splitlines())])
    code = main(["refine", "--input", str(inp), "--gold", str(gold), "--out", str(out), "--iterations", "1"])
    printed = capsys.readouterr().out
    assert code == 0 and "fall-back: θp − θn = 0.000 < 0.05" in printed and "gold rows alone" in printed, printed
    history = json.loads((out / "history.json").read_text())
    assert history["gold_fallback"]["gain_vs_judge"]["value"] > 0
    truth = {r["id"]: r["gold_label"] for r in make_rows()}
    refined = [json.loads(line) for line in (out / "refined.jsonl").read_text().splitlines()]
    assert sum(r["refined_label"] == truth[r["id"]] for r in refined) > 45  # the coin gets about 30 of 60
    assert (out / "classifier" / "head.safetensors").exists()
    # the exported reward's temperature comes from the refine run's cross-fitted gold scores, not from
    # the gold-trained classifier's own (in-sample) logits on its training rows
    gold_ids = {json.loads(line)["id"]: json.loads(line)["gold_label"] for line in gold.read_text().splitlines()}
    oof = np.array([-r["refined_score"] for r in refined if r["id"] in gold_ids])
    safe = np.array([gold_ids[r["id"]] == "safe" for r in refined if r["id"] in gold_ids], dtype=float)
    assert main(["reward", "export", "--from", str(out), "--out", str(tmp_path / "reward"), "--distill-epochs", "1",
                 "pairwise.enabled=false"]) == 0
    meta = load_reward_metadata(tmp_path / "reward")
    assert meta["calibration"]["on"] == "cross-fitted scores of the gold-only classifier"
    assert meta["temperature"] == pytest.approx(fit_temperature(oof, safe))
    assert meta["calibration"]["accuracy"] == pytest.approx(np.mean((oof > 0) == (safe > 0)))


def test_missing_model_path(tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(tmp_path / "o"),
                     "--model", str(tmp_path / "no-such-model"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_existing_output_needs_overwrite(tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, err = _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(out), "--iterations", "1")
    assert code == 2 and "exists and is not empty; pass --overwrite" in err
    assert (out / "keep.txt").read_text() == "mine"
    assert _run(capsys, "refine", "--input", str(corpus), "--gold", str(gold), "--out", str(out), "--iterations", "1", "--overwrite")[0] == 0
    assert (out / "refined.jsonl").exists() and not (out / "keep.txt").exists()
