"""Stacking the classifier with the judge's verdict on the gold rows (rlaif_uu/refine/stack.py)."""

from __future__ import annotations

import numpy as np

from rlaif_uu.refine.priors import GoldSet, sample_gold
from rlaif_uu.refine.stack import stack_with_judge


def _ccn(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth, a noisy logit g (as a classifier would give) and a judge with class-conditional noise."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    g = 1.5 * (2 * y - 1) + rng.normal(scale=1.5, size=n)
    judge = np.where(y == 1, rng.random(n) > 0.35, rng.random(n) < 0.15).astype(int)
    return y, g, judge


def _gold(y: np.ndarray, judge: np.ndarray, n: int = 50, seed: int = 0) -> GoldSet:
    idx = sample_gold(judge, n, seed)
    return GoldSet.from_strata(idx, y[idx], judge)


def test_stacking_beats_the_classifier_and_the_judge_under_class_conditional_noise() -> None:
    y, g, judge = _ccn()
    wins = []
    for seed in range(5):
        gold = _gold(y, judge, seed=seed)
        s, weights = stack_with_judge(g, judge, gold)
        assert weights["classifier"] > 0 and weights["judge"] > 0  # both carry evidence here
        rest = np.setdiff1d(np.arange(len(y)), gold.index)
        accs = [((pred[rest] > 0).astype(int) == y[rest]).mean() for pred in (s, g, judge - 0.5)]
        wins.append(accs[0] > max(accs[1:]))
    assert sum(wins) >= 4


def test_gold_rows_get_out_of_fold_scores() -> None:
    y, g, judge = _ccn(seed=1)
    gold = _gold(y, judge)
    s, _ = stack_with_judge(g, judge, gold)
    i = 7
    flipped = GoldSet(gold.index, np.where(np.arange(len(gold)) == i, 1 - gold.labels, gold.labels), gold.weights)
    s_flipped, _ = stack_with_judge(g, judge, flipped)
    assert s_flipped[gold.index[i]] == s[gold.index[i]]  # its own label never fits its own score
    others = np.setdiff1d(np.arange(len(y)), gold.index)
    assert not np.allclose(s_flipped[others], s[others])  # ... while the full fit uses it


def test_an_uninformative_judge_leaves_the_classifier_in_charge() -> None:
    y, g, _ = _ccn(seed=2)
    coin = (np.random.default_rng(3).random(len(y)) < 0.5).astype(int)
    s, weights = stack_with_judge(g, coin, _gold(y, coin, n=200))
    assert abs(weights["judge"]) < weights["classifier"]
    assert ((s > 0) == (g > 0)).mean() > 0.9
    assert np.corrcoef(s, g)[0, 1] > 0.9
