"""The vLLM offline-engine judge on SmolLM2: scores, determinism, parity with transformers, the label CLI, errors."""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import pytest
import torch

from rlaif_uu.assets import SMOLLM2
from rlaif_uu.cli import main
from rlaif_uu.data.io import read_records
from rlaif_uu.errors import UserError
from rlaif_uu.label import vllm_backend
from rlaif_uu.label.config import judge_config
from rlaif_uu.label.run import build_judge
from rlaif_uu.label.transformers_backend import TransformersJudge
from rlaif_uu.label.vllm_backend import VLLMJudge, score_top_logprobs
from tests.conftest import make_rows, write_jsonl
from tests.vllm.conftest import ENGINE_OPTS

ROWS = make_rows(8)
PROMPTS = [r["prompt"] for r in ROWS]
RESPONSES = [r["response"] for r in ROWS]


def test_scores_are_finite_deterministic_and_match_transformers(engine_judge: VLLMJudge) -> None:
    first = engine_judge(PROMPTS, RESPONSES)
    again = engine_judge(PROMPTS[::-1], RESPONSES[::-1])[::-1]  # other batch order: a row's score is its own
    assert all(v.score is not None and math.isfinite(v.score) for v in first), first
    assert [v.score for v in first] == pytest.approx([v.score for v in again], abs=1e-4)
    assert all("bound" not in v.meta and 0 < v.meta["verdict_mass"] < 1 for v in first)  # exact verdict ids, not top-k
    assert len({round(v.score, 3) for v in first}) > 1  # the scores depend on the row  # type: ignore[arg-type]
    torch.set_num_threads(1)
    judge = TransformersJudge(SMOLLM2)
    reference = judge(PROMPTS, RESPONSES)  # same template and token ids
    fed = judge.tokenizer.encode(judge.chat_text(PROMPTS[0], RESPONSES[0]), add_special_tokens=False)
    assert engine_judge.token_ids(PROMPTS[0], RESPONSES[0]) == fed
    assert [v.score for v in first] == pytest.approx([v.score for v in reference], abs=0.02)
    assert [v.meta["verdict_mass"] for v in first] == pytest.approx([v.meta["verdict_mass"] for v in reference], rel=0.02)


def test_rows_past_the_context_abstain_alone(engine_judge: VLLMJudge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_judge, "max_field_tokens", 10_000)
    long_response = "word " * 3000  # > max_model_len 2048 tokens
    verdicts = engine_judge([PROMPTS[0], PROMPTS[1]], [long_response, RESPONSES[1]])
    assert verdicts[0].score is None and re.search(r"tokens > max_model_len 2048", verdicts[0].meta["error"])
    assert verdicts[1].score is not None and math.isfinite(verdicts[1].score)


def test_top_k_fallback_bounds_and_abstains() -> None:
    top = {1: -1.0, 2: -2.0, 3: -5.0}
    assert score_top_logprobs(top, [1], [2]).score == pytest.approx(1.0)
    bound = score_top_logprobs(top, [1, 9], [8])
    assert bound.score == pytest.approx(-1.0 - -5.0) and bound.meta["bound"] is True
    both = score_top_logprobs(top, [1, 2], [3])
    assert both.score == pytest.approx(math.log(math.exp(-1) + math.exp(-2)) + 5.0)
    assert both.meta["verdict_mass"] == pytest.approx(math.exp(-1) + math.exp(-2) + math.exp(-5), abs=1e-6)
    assert score_top_logprobs(top, [7], [8]).score is None


def _label(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["label", "--no-progress", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_label_cli_with_the_vllm_judge_then_a_cached_rerun(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           engine_judge: VLLMJudge) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", [{k: v for k, v in r.items() if k != "judge_label"} for r in ROWS])
    out, cache = tmp_path / "labelled.jsonl", tmp_path / "cache.sqlite"
    argv = ["--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", f"vllm:model={SMOLLM2},{ENGINE_OPTS}"]
    code, stdout, err = _label(capsys, *argv)
    assert code == 0, err
    rows = read_records(out, required=("prompt", "response", "judge_label"))  # what `rlaif-uu refine` reads
    assert len(rows) == 8 and all(r["judge_label"] in (0, 1) and r["judge_score"] is not None for r in rows)
    assert all(r["vllm_label"] in ("harmful", "safe") for r in rows)
    expected = {p: v.score for p, v in zip(PROMPTS, engine_judge(PROMPTS, RESPONSES))}  # the session's engine agrees
    assert [r["vllm_score"] for r in rows] == pytest.approx([expected[r["prompt"]] for r in rows], abs=1e-4)
    summary = json.loads(Path(f"{out}.agreement.json").read_text())["judges"]["vllm"]
    assert summary["judge_id"] == f"vllm:{SMOLLM2}" and summary["judged"] == 8 and "strict-moderator" in summary["template"]
    start = time.monotonic()
    code, stdout, err = _label(capsys, *argv, "--overwrite")
    assert code == 0, err
    assert "8 cached, 0 judged" in stdout and time.monotonic() - start < 10  # the engine never started
    assert [r["vllm_score"] for r in read_records(out)] == [r["vllm_score"] for r in rows]


def test_bad_model_and_missing_vllm_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    corpus, out = write_jsonl(tmp_path / "c.jsonl", ROWS[:2]), tmp_path / "out.jsonl"
    (tmp_path / "empty-model").mkdir()
    cases = [
        (f"vllm:model={tmp_path / 'nowhere'}", "does not exist"),
        (f"vllm:model={tmp_path / 'empty-model'},{ENGINE_OPTS}", "cannot start the engine"),
        ("vllm", "needs model="),
    ]
    for spec, match in cases:
        code, _, err = _label(capsys, "--input", str(corpus), "--out", str(out), "--no-cache", "--judge", spec)
        assert code == 2 and len(err.strip().splitlines()) == 1 and re.search(match, err), err
        assert not out.exists()
    monkeypatch.setattr(vllm_backend, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"pip install vllm.*bash scripts/setup_vllm.sh"):
        build_judge(judge_config("vllm", model=SMOLLM2), judge_responses=True)
