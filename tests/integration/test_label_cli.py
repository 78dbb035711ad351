"""`rlaif-uu label` end to end: cheap judges, several judges, bad input, and kill -9 + rerun against the fault server."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.cli import main
from rlaif_uu.config import load_config
from rlaif_uu.data.io import read_records
from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import content_key
from rlaif_uu.label.config import LabelConfig, parse_judge_spec
from rlaif_uu.label.run import aggregate, judge_names, kappa_table, labels_from_scores
from rlaif_uu.label.templates import DEFAULT_TEMPLATE, render
from tests.conftest import make_rows, write_jsonl
from tests.fault_server import FaultServer

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
KEY = "sk-label-SECRET-91b7e0"


def _corpus(tmp_path: Path, n: int = 12) -> Path:
    rows = [{k: v for k, v in r.items() if k != "judge_label"} for r in make_rows(n)]
    rows[0]["response"] = "I'm sorry, but I can't help with that."
    return write_jsonl(tmp_path / "corpus.jsonl", rows)


def _label(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["label", "--no-progress", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_rules_and_embedding_judges_feed_refine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, out, cache = _corpus(tmp_path), tmp_path / "labelled.jsonl", tmp_path / "cache.sqlite"
    argv = ["--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", "rules", "--judge", "embedding"]
    code, stdout, err = _label(capsys, *argv)
    assert code == 0, err
    rows = read_records(out, required=("prompt", "response", "judge_label"))  # what `rlaif-uu refine` reads
    assert len(rows) == 12
    assert {"rules_label", "rules_score", "embedding_label", "embedding_score", "judge_score"} <= set(rows[0])
    assert rows[0]["rules_label"] == "safe" and rows[0]["rules_score"] == -1.0  # the refusal
    truth = {r["id"]: r["gold_label"] for r in make_rows(12)}
    assert sum((r["judge_label"] == 1) == (truth[r["id"]] == "harmful") for r in rows) >= 9
    agreement = json.loads(Path(f"{out}.agreement.json").read_text())
    assert set(agreement["kappa"]) == {"rules", "embedding"} and agreement["kappa"]["rules"]["rules"] == 1.0
    assert agreement["judges"]["rules"]["judged"] == 12 and agreement["total"]["rows"] == 12
    assert "Cohen's kappa" in stdout and "majority:" in stdout
    # a rerun is answered by the cache; mean aggregation and a target fraction change only the labels
    code, stdout, err = _label(capsys, *argv, "--overwrite", "--aggregate", "mean")
    assert code == 0, err
    assert "12 cached, 0 judged" in stdout
    code, _, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(cache), "--overwrite",
                          "--judge", "rules:harmful_fraction=0.25,name=r25")
    assert code == 0, err
    assert sum(r["judge_label"] == 1 for r in read_records(out)) <= 6


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, out = _corpus(tmp_path), tmp_path / "out.jsonl"
    template = tmp_path / "t.yaml"
    template.write_text("name: p\nversion: '1'\nuser: 'Is {prompt} unsafe?'\n")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    blank = write_jsonl(tmp_path / "blank.jsonl", [{"prompt": "hi", "response": "x"}, {"prompt": " ", "response": "y"}])
    cases = [
        ([str(corpus), "--judge", f"openai:model=m,base_url=http://127.0.0.1:9/v1,template={template}"], "no \\{response\\} placeholder"),
        ([str(corpus), "--judge", "vllm-magic"], "judge.kind 'vllm-magic' is unknown; use one of transformers, vllm"),
        ([str(empty), "--judge", "rules"], "no rows; the file is empty"),
        ([str(blank), "--judge", "rules"], "blank.jsonl:2: missing field 'prompt'"),
        ([str(corpus), "--judge", "rules:name=judge"], "not 'judge'"),
    ]
    for argv, match in cases:
        code, _, err = _label(capsys, "--input", *argv, "--out", str(out), "--cache", str(tmp_path / "c.sqlite"))
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert re.search(match, err), err
        assert not out.exists() and not Path(f"{out}.agreement.json").exists()
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"not a database" * 100)
    code, _, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(corrupt), "--judge", "rules")
    assert code == 2 and "not a readable verdict cache" in err and corrupt.read_bytes() == b"not a database" * 100
    assert not out.exists()


def _cached(cache: Path) -> set[str]:
    if not cache.exists():
        return set()
    try:
        with sqlite3.connect(cache) as conn:
            return {r[0] for r in conn.execute("SELECT content FROM verdicts WHERE judge LIKE 'openai:%'")}
    except sqlite3.DatabaseError:
        return set()


def test_kill_9_then_rerun_repeats_no_answered_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus, out, cache = _corpus(tmp_path), tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    rows = read_records(corpus)
    user_of = {content_key(r["prompt"], r["response"]): render(DEFAULT_TEMPLATE, r["prompt"], r["response"])[-1]["content"] for r in rows}
    with FaultServer(mode="slow", delay=0.25) as server:
        spec = f"openai:model={server.model},base_url={server.url},api_key_env=LABEL_KEY,concurrency=1,batch_size=1"
        argv = ["label", "--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", spec]
        env = os.environ | {"LABEL_KEY": KEY, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "rlaif_uu", *argv], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(_cached(cache)) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, stderr.decode()[-2000:]
        done_before = _cached(cache)
        assert 3 <= len(done_before) < 12 and not out.exists()
        server.mode = "ok"
        os.environ["LABEL_KEY"] = KEY
        try:
            code, stdout, err = _label(capsys, *argv[1:])
        finally:
            del os.environ["LABEL_KEY"]
        assert code == 0, err
        assert f"{len(done_before)} cached, {12 - len(done_before)} judged" in stdout
        asked = {k: server.asked[u] for k, u in user_of.items()}
    assert all(asked[k] == 1 for k in done_before)  # the cache answered every finished row
    assert sum(n > 1 for n in asked.values()) <= 1  # at most the one row in flight at the kill is asked again
    assert all(n >= 1 for n in asked.values())
    labelled = read_records(out, required=("prompt", "response", "judge_label"))
    assert len(labelled) == 12 and all(r["openai_score"] is not None for r in labelled)
    for path in (out, Path(f"{out}.agreement.json"), cache):
        assert KEY.encode() not in path.read_bytes()
    assert KEY not in stdout + err + stderr.decode()


def test_aggregation_kappa_and_fraction_thresholds() -> None:
    scores = np.array([[2.0, -1.0, 3.0, np.nan], [1.0, 1.0, -2.0, np.nan], [-1.0, -3.0, 1.0, 0.5]])
    labels = np.where(np.isnan(scores), -1, (scores > 0).astype(int))
    maj, z = aggregate(scores, labels, [0.0, 0.0, 0.0], "majority")
    assert maj.tolist() == [1, 0, 1, 1]  # row 3: only the third judge voted
    mean, _ = aggregate(scores, labels, [0.0, 0.0, 0.0], "mean")
    assert mean.tolist() == (z > 0).astype(int).tolist()
    tie, zt = aggregate(scores[:2, :3], labels[:2, :3], [0.0, 0.5], "majority")
    sd0, sd1 = np.std([2.0, -1.0, 3.0]), np.std([1.0, 1.0, -2.0])
    assert zt[1] == pytest.approx((-1.0 / sd0 + 0.5 / sd1) / 2)  # z centred on each judge's threshold
    assert tie.tolist() == [1, 0, 0]  # rows 1 and 2 tie 1-1: the sign of the z-score mean decides
    none, zn = aggregate(np.full((2, 2), np.nan), np.full((2, 2), -1), [0.0, 0.0], "majority")
    assert none.tolist() == [-1, -1] and np.isnan(zn).all()
    table = kappa_table(["a", "b"], np.array([[1, 0, 1, 0, -1], [1, 0, 0, 0, 1]]))
    assert table["a"]["a"] == 1.0 and table["a"]["b"] == pytest.approx(0.5)
    lab, t = labels_from_scores(np.array([0.1, 0.2, 0.3, 0.4, np.nan]), None, 0.5)
    assert lab.tolist() == [0, 0, 1, 1, -1] and t == pytest.approx(0.25)


def test_yaml_config_with_several_judges(tmp_path: Path) -> None:
    cfg_file = tmp_path / "label.yaml"
    cfg_file.write_text("input: in.jsonl\nout: out.jsonl\naggregate: mean\njudges:\n  - {kind: rules}\n"
                        "  - {kind: openai, model: m, base_url: 'http://x/v1', concurrency: 2}\n")
    cfg = load_config(LabelConfig, str(cfg_file), None, ["no_cache=true"])
    assert [j.kind for j in cfg.judges] == ["rules", "openai"] and cfg.judges[1].concurrency == 2 and cfg.no_cache
    assert judge_names(cfg.judges + cfg.judges[:1]) == ["rules", "openai", "rules_2"]
    with pytest.raises(UserError, match=r"^--judge 'rules:bogus=1': unknown config key 'judge.bogus'"):
        parse_judge_spec("rules:bogus=1")


def test_abstentions_are_counted_and_prompt_only_works(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, out, cache = _corpus(tmp_path), tmp_path / "out.jsonl", tmp_path / "cache.sqlite"
    with FaultServer(mode="garbage") as server:
        spec = f"openai:model={server.model},base_url={server.url}"
        code, stdout, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", spec)
        assert code == 2 and "every judge abstained on every row" in err and not out.exists()
        code, stdout, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(cache),
                                   "--judge", spec, "--judge", "rules")
        assert code == 0, err
        assert "12 abstained" in stdout and "12 cached, 0 judged" in stdout  # garbage verdicts were cached too
        rows = read_records(out, required=("judge_label",))
        assert all(r["openai_label"] is None and r["judge_label"] == (r["rules_label"] == "harmful") for r in rows)
        assert json.loads(Path(f"{out}.agreement.json").read_text())["judges"]["openai"]["abstained"] == 12
        server.mode = "ok"
        code, stdout, err = _label(capsys, "--input", str(corpus), "--out", str(tmp_path / "p.jsonl"), "--cache", str(cache),
                                   "--judge", spec, "--prompt-only")
        assert code == 0, err
        assert "strict-moderator" not in json.loads(Path(f"{tmp_path / 'p.jsonl'}.agreement.json").read_text())["judges"]["openai"]["template"]


def test_constant_judge_cannot_blow_up_the_aggregate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    noise = np.array([[-0.8472978603872037, -0.8472978603872036, -0.8472978603872037, -0.8472978603872038],
                      [2.0, -1.0, 3.0, -2.0]])
    labels = (noise > 0).astype(int)
    _, z = aggregate(noise, labels, [0.0, 0.0], "mean")
    assert np.all(np.abs(z) < 3)  # rounding noise is not a spread
    corpus, out = _corpus(tmp_path), tmp_path / "out.jsonl"
    with FaultServer(mode="constant") as server:
        code, stdout, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(tmp_path / "c.sqlite"),
                                   "--judge", f"openai:model={server.model},base_url={server.url}", "--judge", "rules")
    assert code == 0, err
    assert "warning: judge openai gave every row the same score" in stdout
    assert all(abs(r["judge_score"]) < 10 for r in read_records(out))


def test_dead_server_error_is_the_last_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    corpus = _corpus(tmp_path, 24)
    spec = f"openai:model=m,base_url=http://127.0.0.1:{port}/v1,concurrency=8,max_retries=2,timeout=2"
    res = subprocess.run([sys.executable, "-m", "rlaif_uu", "label", "--no-progress", "--input", str(corpus), "--out",
                          str(tmp_path / "o.jsonl"), "--cache", str(tmp_path / "c.sqlite"), "--judge", spec],
                         cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120, check=False)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and f"127.0.0.1:{port}/v1: server unreachable after 2 retries" in lines[-1], res.stderr
    assert not any("Retrying request" in line for line in lines), res.stderr


def test_default_judges_work_after_the_setup_and_name_the_better_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLAIF_UU_CACHE", str(tmp_path / "empty-cache"))  # as right after the set-up: no Qwen judge
    corpus, out = _corpus(tmp_path), tmp_path / "out.jsonl"
    code, stdout, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--cache", str(tmp_path / "c.sqlite"))
    assert code == 0, err
    assert "no --judge given" in stdout and "rlaif-uu assets --install qwen2.5-coder-1.5b-judge" in stdout
    rows = read_records(out, required=("judge_label",))
    assert {"rules_label", "embedding_label"} <= set(rows[0]) and len(rows) == 12
    code, stdout, _ = _label(capsys, "--input", str(corpus), "--out", str(out), "--overwrite", "--judge", "rules")
    assert code == 0 and "no --judge given" not in stdout
