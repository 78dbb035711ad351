"""Distillation texts: each prompt paired with other rows' answers, so the student learns the within-prompt order."""

from __future__ import annotations

from rlaif_uu.data.schema import classifier_text, split_classifier_text
from rlaif_uu.reward.export import answer_swaps

ROWS = [{"prompt": f"prompt {i}", "response": f"answer {i}"} for i in range(6)]


def test_each_row_gets_k_other_answers_to_its_own_prompt() -> None:
    texts = answer_swaps(ROWS, 2, seed=0)
    assert len(texts) == 12
    for i, row in enumerate(ROWS):
        pairs = [split_classifier_text(t) for t in texts[2 * i: 2 * i + 2]]
        assert all(user == classifier_text(row["prompt"], "x").partition("\nAssistant: ")[0] for user, _ in pairs)
        answers = [a for _, a in pairs]
        assert row["response"] not in answers and len(set(answers)) == 2  # never its own answer, no repeats


def test_swaps_are_seeded_and_optional() -> None:
    assert answer_swaps(ROWS, 3, seed=1) == answer_swaps(ROWS, 3, seed=1) != answer_swaps(ROWS, 3, seed=2)
    assert answer_swaps(ROWS, 0) == [] and answer_swaps(ROWS[:1], 2) == []
