"""Online DPO's pairing (best vs worst candidate per prompt) and its refusal pool."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.align.dpo import BUILTIN_REFUSALS, make_pairs, refusal_pool
from rlaif_uu.errors import UserError
from rlaif_uu.label.cheap import RuleJudge

ROWS = [{"prompt": [{"role": "user", "content": "How do I make a bomb?"}], "kind": "harmful"},
        {"prompt": [{"role": "user", "content": "How do I bake bread?"}], "kind": "benign"},
        {"prompt": [{"role": "user", "content": "Name a fruit."}], "kind": "benign"}]
REFUSAL = "I'm sorry, but I can't help with that."


def _pairs(rewards: list[list[float]], refusal_rewards: list[list[float]], min_gap: float = 0.1):  # type: ignore[no-untyped-def]
    samples = [["Sure, mix these.", "Here is how."], ["Knead the dough.", "Bake at 220 C."], ["Apple.", "Pear."]]
    return make_pairs(ROWS, samples, rewards, [[REFUSAL]] * 3, refusal_rewards, min_gap, np.random.default_rng(0))


def test_the_reward_decides_where_the_refusal_goes() -> None:
    # harmful: the refusal ranks first -> chosen; benign: it ranks last -> rejected (an over-refusal)
    pairs, stats = _pairs([[0.1, 0.3], [0.8, 0.6], [0.7, 0.9]], [[0.95], [0.05], [0.2]])
    by_prompt = {p["prompt"][-1]["content"]: p for p in pairs}
    bomb = by_prompt["How do I make a bomb?"]
    assert bomb["chosen"][0]["content"] == REFUSAL and bomb["rejected"][0]["content"] == "Sure, mix these."
    bread = by_prompt["How do I bake bread?"]
    assert bread["chosen"][0]["content"] == "Knead the dough." and bread["rejected"][0]["content"] == REFUSAL
    assert stats.refusal_chosen == {"harmful": 1, "benign": 0} and stats.refusal_rejected == {"harmful": 0, "benign": 2}
    assert stats.pairs == {"harmful": 1, "benign": 2} and stats.prompts == {"harmful": 1, "benign": 2}
    assert stats.policy_reward == pytest.approx(np.mean([0.1, 0.3, 0.8, 0.6, 0.7, 0.9]))  # the policy's own samples only
    assert all(p["margin"] >= 0.1 for p in pairs)


def test_small_gaps_and_abstentions_make_no_pair() -> None:
    pairs, stats = _pairs([[0.5, 0.52], [np.nan, np.nan], [0.1, 0.9]], [[0.55], [np.nan], [0.5]])
    assert [p["prompt"][-1]["content"] for p in pairs] == ["Name a fruit."]  # gap 0.05 < 0.1; one finite candidate
    assert pairs[0]["chosen"][0]["content"] == "Pear." and pairs[0]["rejected"][0]["content"] == "Apple."
    assert stats.pairs == {"benign": 1} and stats.prompts == {"harmful": 1, "benign": 2}


def test_ties_are_broken_at_random_not_by_position() -> None:
    chosen = set()
    for seed in range(20):
        pairs, _ = make_pairs(ROWS[:1], [["a", "b", "c"]], [[1.0, 1.0, 0.0]], [[]], [[]], 0.1, np.random.default_rng(seed))
        chosen.add(pairs[0]["chosen"][0]["content"])
        assert pairs[0]["rejected"][0]["content"] == "c"
    assert chosen == {"a", "b"}


def test_builtin_refusals_are_refusals_by_the_rules() -> None:
    rules = RuleJudge()
    assert all(rules.is_refusal(t) for t in BUILTIN_REFUSALS)


def test_refusal_pool_files(tmp_path: Path) -> None:
    assert refusal_pool("builtin") == list(BUILTIN_REFUSALS)
    text = tmp_path / "refusals.txt"
    text.write_text("No.\n\n  I won't.  \n")
    assert refusal_pool(str(text)) == ["No.", "I won't."]
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(UserError, match="holds no refusal text"):
        refusal_pool(str(tmp_path / "empty.txt"))
    with pytest.raises(UserError, match="does not exist"):
        refusal_pool(str(tmp_path / "missing.txt"))
