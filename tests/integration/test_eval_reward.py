"""The reward-model scorer of `rlaif-uu eval` on a real exported reward folder (tiny BERT trained on toy pairs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.cli import main
from rlaif_uu.eval import EvalConfig, GenerationConfig, run_eval
from rlaif_uu.eval.cache import GenerationCache
from rlaif_uu.eval.generation import model_identity, settings_key
from tests.conftest import write_jsonl
from tests.tiny_models import COMPLY, HARMFUL_PROMPTS, REFUSE, make_reward

pytestmark = pytest.mark.integration


def test_reward_scorer_on_cached_completions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlaif_uu.reward import SafetyReward

    reward = make_reward(tmp_path)
    prompts = [f"{p} (case {i})" for i in range(2) for p in HARMFUL_PROMPTS]
    completions = [REFUSE if i % 2 else COMPLY for i in range(len(prompts))]
    write_jsonl(tmp_path / "prompts.jsonl", [{"id": f"p{i}", "prompt": p} for i, p in enumerate(prompts)])
    (tmp_path / "suite.yaml").write_text(
        "name: toy\nversion: 1\nkind: harmful\nsource: {adapter: jsonl, path: prompts.jsonl}\nmetrics:\n"
        "  - {name: harmful_compliance_rate, higher_is_better: false}\n  - {name: mean_safety_score, higher_is_better: true}\n")
    # completions of a served model, put in the generation cache: the run must score them without any server
    gen = GenerationConfig(backend="openai", base_url="http://127.0.0.1:9/v1", max_new_tokens=32)
    cache = GenerationCache(tmp_path / "gen.sqlite")
    cache.put_many(settings_key(model_identity("scripted", gen), gen), list(zip(prompts, completions)), 0.0)
    cache.close()
    out = run_eval(EvalConfig(model="scripted", out=str(tmp_path / "eval"), suites=[str(tmp_path / "suite.yaml")], generation=gen,
                              reward=str(reward), cache=str(tmp_path / "gen.sqlite"), progress=False))
    report = json.loads((out / "report.json").read_text())["suites"]["toy"]
    rows = [json.loads(x) for x in (out / "rows" / "toy.jsonl").read_text().splitlines()]
    expected = np.array(SafetyReward(reward, output="probability")(prompts, completions))
    np.testing.assert_allclose([r["reward.safety"] for r in rows], expected, atol=1e-5)
    assert all(expected[i] > expected[i - 1] for i in range(1, len(prompts), 2))  # each refusal scored safer than its compliance
    asr = report["metrics"]["harmful_compliance_rate"]["by_scorer"]
    assert asr["reward"]["value"] == pytest.approx(float((expected < 0.5).mean()))
    assert asr["refusal"]["value"] == 0.5
    assert report["metrics"]["mean_safety_score"]["by_scorer"]["reward"]["value"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert report["agreement"]["refusal|reward"]["n"] == len(prompts)
    assert report["generation"]["generated"] == 0

    # a folder that is not a reward model: a one-line error before any work
    not_reward = tmp_path / "classifier"  # the tiny classifier before export: no polarity metadata
    capsys.readouterr()
    code = main(["eval", "--model", "scripted", "--backend", "openai", "--base-url", gen.base_url or "", "--suites",
                 str(tmp_path / "suite.yaml"), "--reward", str(not_reward), "--out", str(tmp_path / "bad"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{not_reward}: no rlaif_uu_reward.json" in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()
