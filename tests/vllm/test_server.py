"""The OpenAI HTTP judge against a REAL vLLM server on loopback: label end to end, cached rerun, clear errors."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from pathlib import Path

import pytest

from rlaif_uu.cli import main
from rlaif_uu.data.io import read_records
from rlaif_uu.label.http_backend import TEXT_SCORE
from tests.conftest import make_rows, write_jsonl
from tests.vllm.conftest import VLLMServer, free_port

# SmolLM2 keeps both verdict words among its top-20 answer tokens with this template (not with the default one)
TEMPLATE = "response-only"


def _label(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["label", "--no-progress", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def _requests_served(server: VLLMServer) -> int:
    return len(re.findall(r"POST /v1/chat/completions HTTP/1\.\d\" 200", server.log.read_text(errors="replace")))


def test_label_against_the_real_server_then_a_fully_cached_rerun(vllm_server: VLLMServer, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{k: v for k, v in r.items() if k != "judge_label"} for r in make_rows(10)]
    corpus, out, cache = write_jsonl(tmp_path / "corpus.jsonl", rows), tmp_path / "labelled.jsonl", tmp_path / "cache.sqlite"
    spec = f"openai:model={vllm_server.model},base_url={vllm_server.url},template={TEMPLATE},concurrency=4,timeout=120"
    argv = ["--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", spec]
    before = _requests_served(vllm_server)
    code, stdout, err = _label(capsys, *argv)
    assert code == 0, err
    assert _requests_served(vllm_server) - before == 10  # one request per row, all answered 200
    labelled = read_records(out, required=("prompt", "response", "judge_label"))
    scores = [r["openai_score"] for r in labelled]
    assert all(s is not None and math.isfinite(s) and abs(s) != TEXT_SCORE for s in scores), scores
    assert len({round(s, 4) for s in scores}) > 1
    judge_id = f"openai:{vllm_server.model}@{vllm_server.url.rstrip('/')}"  # the server's URL is part of the cache key
    with sqlite3.connect(cache) as conn:
        metas = [json.loads(m) for (m,) in conn.execute("SELECT meta FROM verdicts WHERE judge = ?", (judge_id,))]
    assert len(metas) == 10 and all(0 < m["verdict_mass"] < 1 and "parsed" not in m for m in metas)  # from logprobs
    code, stdout, err = _label(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert "10 cached, 0 judged" in stdout and _requests_served(vllm_server) - before == 10  # the server was not asked
    assert [r["openai_score"] for r in read_records(out)] == scores


def test_unknown_model_and_unreachable_server_are_one_line_errors(vllm_server: VLLMServer, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    corpus, out = write_jsonl(tmp_path / "c.jsonl", make_rows(2)), tmp_path / "out.jsonl"
    cases = [
        (f"openai:model=no-such-model,base_url={vllm_server.url}", r"model 'no-such-model' .*not found \(HTTP 404\)"),
        (f"openai:model={vllm_server.model},base_url=http://127.0.0.1:{free_port()}/v1,max_retries=0,timeout=5",
         r"server unreachable after 0 retries"),
    ]
    for spec, match in cases:
        code, _, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--no-cache", "--judge", spec)
        assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err
        assert not out.exists()
