"""`rlaif-uu refine --method neighbourhood|confident|ensemble|active` end to end on a tiny BERT, and their bad inputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.cli import main
from tests.conftest import make_rows, write_jsonl
from tests.tiny_models import tiny_bert

pytestmark = pytest.mark.integration

TRUTH = {r["id"]: r["gold_label"] for r in make_rows()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_bert(tmp_path_factory.mktemp("tiny") / "bert"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _judged(tmp_path: Path, noise: tuple[float, ...] = (0.1, 0.25, 0.4), drop: int = 0) -> Path:
    """The conftest corpus plus per-judge columns a_label, b_label, ... with the given noise rates."""
    rng = np.random.default_rng(5)
    rows = []
    for r in make_rows():
        t = r["gold_label"] == "harmful"
        row = {k: v for k, v in r.items() if k != "gold_label"}
        for name, p in zip("abcd", noise):
            row[f"{name}_label"] = "harmful" if (t if rng.random() > p else not t) else "safe"
        rows.append(row)
    for r in rows[:drop]:
        r["c_label"] = None
    return write_jsonl(tmp_path / "judged.jsonl", rows)


def _truth_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "truth.jsonl", [{"id": i, "gold_label": y} for i, y in TRUTH.items()])


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_neighbourhood_without_gold(tmp_path: Path, corpus: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code, _stdout, err = _run(capsys, "refine", "--method", "neighbourhood", "--input", str(corpus), "--out", str(out),
                             "--model", tiny, "neighbourhood.k=5", "backbone.epochs=20")
    assert code == 0, err
    rows = _rows(out / "refined.jsonl")
    assert len(rows) == 60 and {r["refined_label"] for r in rows} <= {"harmful", "safe"}
    history = json.loads((out / "history.json").read_text())
    assert history["method"] == "neighbourhood" and history["n_gold"] == 0
    assert history["diagnostics"]["n_pool"] == 60
    assert history["flipped"] == sum(r["refined_label"] != r["judge_label"] for r in rows)
    assert (out / "classifier" / "head.safetensors").exists()
    assert "method: neighbourhood" in (out / "config.yaml").read_text()


def test_a_refiner_that_cannot_beat_the_judge_on_gold_falls_back_to_it(tmp_path: Path, gold: Path, tiny: str,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    # a perfect judge: no refiner can beat it on the gold rows, so the guard must return its labels
    perfect = write_jsonl(tmp_path / "perfect.jsonl", [{k: v for k, v in r.items() if k != "gold_label"}
                                                       | {"judge_label": r["gold_label"]} for r in make_rows()])
    out = tmp_path / "o"
    code, stdout, err = _run(capsys, "refine", "--method", "neighbourhood", "--input", str(perfect), "--gold",
                             str(gold), "--out", str(out), "--model", tiny, "neighbourhood.k=5",
                             "backbone.epochs=20", "neighbourhood.noisy_threshold=0.01")
    assert code == 0, err
    guard = json.loads((out / "history.json").read_text())["diagnostics"]["guard"]
    assert guard["fell_back"] and guard["gain_vs_judge"] <= 0
    assert re.search(r"guard: the neighbourhood labels score [\d.]+ on the \d+ gold rows vs the judge's 1\.000", stdout)
    assert all(r["refined_label"] == r["judge_label"] for r in _rows(out / "refined.jsonl"))


def test_confident_learning_with_gold(tmp_path: Path, corpus: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code, _stdout, err = _run(capsys, "refine", "--method", "confident", "--input", str(corpus), "--gold", str(gold),
                             "--out", str(out), "backbone.epochs=40")
    assert code == 0, err
    history = json.loads((out / "history.json").read_text())
    assert history["n_gold"] == 20 and history["diagnostics"]["n_pool"] == 40
    joint = np.array(history["diagnostics"]["confident_joint"])
    assert joint.shape == (2, 2) and joint.sum() <= 40
    # real MiniLM separates this corpus: the retrained classifier beats the 20%-noisy judge on the gold rows
    assert history["gold_accuracy"]["value"] > history["judge_gold_accuracy"]["value"]


@pytest.mark.parametrize("then", ["classifier", "robust_uu"])
def test_ensemble_weighs_judges_by_accuracy(then: str, tmp_path: Path, gold: Path, tiny: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    code, _stdout, err = _run(capsys, "refine", "--method", "ensemble", "--input", str(_judged(tmp_path)), "--gold", str(gold),
                             "--out", str(out), "--model", tiny, f"ensemble.then={then}", "--iterations", "1")
    assert code == 0, err
    diag = json.loads((out / "history.json").read_text())["diagnostics"]
    acc = {n: j["accuracy"] for n, j in diag["judges"].items()}
    assert acc["a"] > acc["b"] > acc["c"]  # noise 10% < 25% < 40%
    assert diag["names"] == ["a", "b", "c"]


def test_active_simulated_spends_the_budget(tmp_path: Path, corpus: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    queue, out = tmp_path / "q.jsonl", tmp_path / "o"
    code, _stdout, err = _run(capsys, "refine", "active", "--input", str(corpus), "--queue", str(queue), "--budget", "20",
                             "--batch", "8", "--simulate-from", str(_truth_file(tmp_path)), "--out", str(out), "--model", tiny)
    assert code == 0, err
    asked = _rows(queue)
    assert [sum(r["round"] == k for r in asked) for k in (1, 2, 3)] == [8, 8, 4]
    assert all(r["human_label"] == TRUTH[r["id"]] for r in asked)
    refined = {r["id"]: r["refined_label"] for r in _rows(out / "refined.jsonl")}
    assert all(refined[r["id"]] == TRUTH[r["id"]] for r in asked)  # human answers win over the classifier
    history = json.loads((out / "history.json").read_text())
    assert [r["labels_spent"] for r in history["rounds"]] == [0, 8, 16, 20]


def test_active_resumes_after_a_person_fills_the_queue(tmp_path: Path, corpus: Path, tiny: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    queue, out = tmp_path / "q.csv", tmp_path / "o"
    argv = ("refine", "active", "--input", str(corpus), "--queue", str(queue), "--budget", "10", "--batch", "5",
            "--out", str(out), "--model", tiny)
    for round_ in (1, 2):
        code, stdout, err = _run(capsys, *argv)
        assert code == 0, err
        assert "fill in human_label" in stdout and not out.exists()
        import csv

        rows = list(csv.DictReader(queue.open()))
        assert len(rows) == 5 * round_ and sum(r["human_label"] == "" for r in rows) == 5
        tasks = json.loads((tmp_path / "q.csv.labelstudio.json").read_text())
        assert {t["data"]["row_id"] for t in tasks} == {r["id"] for r in rows if r["human_label"] == ""}
        assert _run(capsys, *argv)[1].count("still need a human_label") == 1  # rerun before answering: waits
        with queue.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows([r | {"human_label": TRUTH[r["id"]]} for r in rows])
    code, stdout, err = _run(capsys, *argv)
    assert code == 0, err and "wrote" in stdout
    assert len(_rows(out / "refined.jsonl")) == 60


def test_active_reads_a_label_studio_export(tmp_path: Path, corpus: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    queue, out = tmp_path / "q.jsonl", tmp_path / "o"
    argv = ("refine", "active", "--input", str(corpus), "--queue", str(queue), "--budget", "4", "--batch", "4",
            "--out", str(out), "--model", tiny)
    assert _run(capsys, *argv)[0] == 0
    tasks = json.loads((tmp_path / "q.jsonl.labelstudio.json").read_text())
    export = [t | {"annotations": [{"result": [{"from_name": "human_label", "to_name": "response", "type": "choices",
                                                "value": {"choices": [TRUTH[t["data"]["row_id"]]]}}]}]} for t in tasks]
    (tmp_path / "export.json").write_text(json.dumps(export))
    code, _stdout, err = _run(capsys, *argv, f"active.answers={tmp_path / 'export.json'}")
    assert code == 0, err
    assert all(r["human_label"] == TRUTH[r["id"]] for r in _rows(queue)) and (out / "refined.jsonl").exists()


def _queue_then(edit, tmp_path: Path, corpus: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    queue = tmp_path / "q.jsonl"
    argv = ("refine", "active", "--input", str(corpus), "--queue", str(queue), "--budget", "6", "--batch", "3",
            "--out", str(tmp_path / "o"), "--model", tiny)
    assert _run(capsys, *argv)[0] == 0
    rows = _rows(queue)
    write_jsonl(queue, edit(rows))
    code, _, err = _run(capsys, *argv)
    return code, err


QUEUE_EDITS = {
    "unknown id": (lambda rows: [rows[0] | {"id": "zz"}, *rows[1:]], r"q.jsonl:1: id 'zz' is not a row of the input"),
    "id never queued": (lambda rows: [rows[0] | {"id": "r59" if rows[0]["id"] != "r59" else "r58"}, *rows[1:]],
                        r"q.jsonl:1: id 'r5[89]' was never queued"),
    "duplicate": (lambda rows: [*rows, rows[0]], r"q.jsonl:4: duplicate id .* \(also at .*q.jsonl:1\)"),
    "unknown label": (lambda rows: [rows[0] | {"human_label": "maybe"}, *rows[1:]], r"q.jsonl:1: field 'human_label': unknown label 'maybe'"),
    "deleted line": (lambda rows: rows[1:], r"queued id .* has no line; restore the 1 deleted line"),
}


@pytest.mark.parametrize("case", list(QUEUE_EDITS))
def test_edited_queue_is_one_clear_line(case: str, tmp_path: Path, corpus: Path, tiny: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    edit, message = QUEUE_EDITS[case]
    code, err = _queue_then(edit, tmp_path, corpus, tiny, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()


BAD = {
    "budget over pool": (("refine", "active", "--queue", "{t}/q.jsonl", "--budget", "500"), "corpus",
                         r"--budget 500 is larger than the pool of 60 rows"),
    "every row gold": (("refine", "--method", "confident", "--gold", "TRUTH"), "corpus",
                       r"only 0 rows are left to train on once the 60 gold rows are set aside"),
    "knn over clean rows": (("refine", "--method", "neighbourhood", "neighbourhood.k=1000", "neighbourhood.noisy_threshold=0.01"),
                            "corpus", r"neighbourhood.k = 1000 neighbours but only \d+ rows were judged clean"),
    "judges cover different rows": (("refine", "--method", "ensemble", "ensemble.then=none"), "partial",
                                    r"judges cover different rows \(a: 60, b: 60, c: 55 of 60 .*row id 'r0' has no 'c_label'"),
    "one judge": (("refine", "--method", "ensemble", "ensemble.judges=[a]"), "judged", r"at least two judges"),
    "no queue": (("refine", "active"), "corpus", r"needs --queue FILE"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_clear_line(case: str, tmp_path: Path, corpus: Path, tiny: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv, data, message = BAD[case]
    inp = {"corpus": lambda: corpus, "partial": lambda: _judged(tmp_path, drop=5), "judged": lambda: _judged(tmp_path)}[data]()
    out = tmp_path / "o"
    argv = tuple(a.replace("{t}", str(tmp_path)).replace("TRUTH", str(_truth_file(tmp_path))) for a in argv)
    code, _, err = _run(capsys, *argv, "--input", str(inp), "--out", str(out), "--model", tiny, "backbone.epochs=5")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err
    assert not out.exists()
