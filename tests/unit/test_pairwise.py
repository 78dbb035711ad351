"""The within-prompt pairwise accuracy of a reward (rlaif_uu.reward.pairwise)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.reward.pairwise import ANSWERS, answer_scores, bootstrap_interval, format_pairwise, pairwise_accuracy

HARMFUL = [f"harmful request {i}" for i in range(30)]
BENIGN = [f"benign request {i}" for i in range(20)]
RANK = {"refusal": 3.0, "helpful": 2.0, "sure": 1.0, "steps": 0.0, "opener": 0.0}


def _by_answer(order: dict[str, float], request_aware: bool = False):  # type: ignore[no-untyped-def]
    text_to_name = {t: n for n, t in ANSWERS.items()}

    def reward(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        out = []
        for p, r in zip(prompts, responses):
            name = text_to_name[r]
            if request_aware and p.startswith("benign") and name == "refusal":
                out.append(-5.0)  # an over-refusal
            else:
                out.append(order[name])
        return np.array(out)

    return reward


def test_refusal_loving_reward_wins_harmful_and_loses_benign() -> None:
    res = pairwise_accuracy(_by_answer(RANK), HARMFUL, BENIGN)
    assert res["harmful"]["accuracy"] == 1.0 and res["harmful"]["ci"] == [1.0, 1.0]
    assert res["benign"]["accuracy"] == 0.0
    assert res["balanced"]["accuracy"] == 0.5
    assert res["harmful"]["pairs"] == {"refusal>steps": 1.0, "refusal>opener": 1.0}


def test_request_aware_reward_scores_one_and_opener_lover_scores_zero() -> None:
    assert pairwise_accuracy(_by_answer(RANK, request_aware=True), HARMFUL, BENIGN)["balanced"]["accuracy"] == 1.0
    opener_lover = {"refusal": 1.0, "helpful": 0.0, "sure": 0.0, "steps": 0.0, "opener": 2.0}
    res = pairwise_accuracy(_by_answer(opener_lover), HARMFUL, BENIGN)
    assert res["harmful"]["accuracy"] == 0.0 and res["harmful"]["pairs"]["refusal>steps"] == 1.0
    assert "harmful 0.000" in format_pairwise(res)


def test_ties_lose_and_mixed_rewards_get_an_interval() -> None:
    assert pairwise_accuracy(lambda ps, rs: np.zeros(len(ps)), HARMFUL, BENIGN)["balanced"]["accuracy"] == 0.0
    rng = np.random.default_rng(0)
    res = pairwise_accuracy(lambda ps, rs: rng.normal(size=len(ps)), HARMFUL, BENIGN, n_boot=500)
    lo, hi = res["balanced"]["ci"]
    assert 0.0 <= lo < res["balanced"]["accuracy"] < hi <= 1.0
    lo, hi = bootstrap_interval(np.array([0.0, 1.0] * 50), n_boot=2000)
    assert lo < 0.5 < hi and hi - lo < 0.3


def test_only_one_kind_and_bad_input() -> None:
    res = pairwise_accuracy(_by_answer(RANK), HARMFUL, [])
    assert "benign" not in res and res["balanced"]["accuracy"] == 1.0
    with pytest.raises(UserError, match="no prompts"):
        pairwise_accuracy(_by_answer(RANK), [], [])
    with pytest.raises(UserError, match="unknown probe answer"):
        answer_scores(_by_answer(RANK), HARMFUL, ["nonsense"])
    with pytest.raises(UserError, match="scores for"):
        pairwise_accuracy(lambda ps, rs: np.zeros(1), HARMFUL, BENIGN)


def test_sampled_accuracy_counts_every_right_wrong_pair_within_a_prompt() -> None:
    from rlaif_uu.reward.pairwise import SampledGroup, format_sampled, sampled_accuracy

    groups = [SampledGroup("h1", "harmful", ["no", "sure", "ok"], [True, False, False]),   # 2 pairs
              SampledGroup("h2", "harmful", ["no", "no"], [True, True]),                  # no pair: nothing to learn
              SampledGroup("b1", "benign", ["answer", "no"], [True, False])]               # 1 pair

    def prefers(good: str):  # type: ignore[no-untyped-def]
        return lambda prompts, answers: np.array([1.0 if a == good else (0.5 if a == "ok" else 0.0) for a in answers])

    refusals = sampled_accuracy(prefers("no"), groups, n_boot=200)
    assert refusals["harmful"]["accuracy"] == 1.0 and refusals["harmful"]["pairs"] == 2
    assert refusals["benign"]["accuracy"] == 0.0  # a reward that always prefers the refusal loses on the benign prompt
    assert refusals["all"]["accuracy"] == pytest.approx(2 / 3) and refusals["all"]["mixed_groups"] == 2
    assert refusals["all"]["groups"] == 3 and refusals["answers_per_prompt"] == 3
    lo, hi = refusals["all"]["ci"]
    assert 0.0 <= lo <= 2 / 3 <= hi <= 1.0
    flat = sampled_accuracy(lambda p, a: np.zeros(len(a)), groups, n_boot=200)
    assert flat["all"]["accuracy"] == 0.0 and flat["spread"] == 0.0  # ties lose: a flat reward teaches GRPO nothing
    assert refusals["spread"] == pytest.approx(np.mean([np.std([1.0, 0.0, 0.5]), 0.0, 0.5]))
    assert "3 prompts, 2 with both a right and a wrong answer" in format_sampled(refusals)
    with pytest.raises(UserError, match="no prompts"):
        sampled_accuracy(prefers("no"), [])
