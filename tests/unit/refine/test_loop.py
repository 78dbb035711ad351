"""The iterative loop on synthetic embeddings: history, selection rule, stopping, failure detection."""

from __future__ import annotations

import numpy as np
import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.refine.backbones import FrozenEncoder
from rlaif_uu.refine.loop import refine
from rlaif_uu.refine.priors import MIN_DELTA, GoldSet, sample_gold


class SyntheticEncoder(FrozenEncoder):
    """The real frozen-encoder head and training, over given feature vectors instead of MiniLM."""

    def __init__(self, features: np.ndarray, **kw: object) -> None:
        super().__init__(model="synthetic", epochs=60, lr=1e-2, **kw)  # type: ignore[arg-type]
        self.features = features

    def prepare(self, texts: list[str]) -> None:
        import torch

        self.embeddings = torch.from_numpy(self.features.astype(np.float32))


def _data(n: int = 600, seed: int = 0, sep: float = 2.5, pi: float = 0.35) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < pi).astype(int)
    x = rng.normal(size=(n, 8))
    x[:, 0] += sep * y
    return x, y


def _run(x: np.ndarray, y: np.ndarray, noisy: np.ndarray, **kw: object):
    idx = sample_gold(noisy, 50, 0)
    return refine([""] * len(y), noisy, GoldSet.from_strata(idx, y[idx], noisy), SyntheticEncoder(x), **kw)  # type: ignore[arg-type]


def test_refinement_beats_class_conditional_noise_and_keeps_history() -> None:
    x, y = _data()
    rng = np.random.default_rng(1)
    noisy = np.where(y == 1, rng.random(len(y)) > 0.35, rng.random(len(y)) < 0.15).astype(int)
    res = _run(x, y, noisy, iterations=3)
    assert [r.iteration for r in res.history][:2] == [0, 1]
    assert res.history[0].flipped == 0 and res.history[1].flipped > 0
    assert res.selected >= 1
    assert (res.labels == y).mean() > (noisy == y).mean() + 0.05  # Bayes accuracy here is ~0.9
    first = res.history[0].priors["theta_p"]
    assert first["low"] <= first["value"] <= first["high"]
    assert res.model is not None and res.model_iteration == res.selected
    assert set(res.history_dict()) >= {"selected_iteration", "stop_reason", "iterations"}


def test_seeded_runs_are_identical() -> None:
    x, y = _data()
    noisy = np.where(np.random.default_rng(2).random(len(y)) < 0.2, 1 - y, y)
    a, b = _run(x, y, noisy, iterations=2, seed=5), _run(x, y, noisy, iterations=2, seed=5)
    assert (a.labels == b.labels).all() and np.allclose(a.scores, b.scores)


def test_stops_when_labels_stop_changing() -> None:
    x, y = _data(sep=6.0)
    noisy = np.where(np.random.default_rng(3).random(len(y)) < 0.1, 1 - y, y)
    res = _run(x, y, noisy, iterations=8, flip_tol=0.02)
    assert len(res.history) < 9 and "converged" in res.stop_reason


def test_hurting_refinement_returns_the_judge_labels() -> None:
    # The judge is right on everything the classifier can see except a pocket that the
    # features cannot separate: the judge's errors sit where the truth is invisible to g.
    rng = np.random.default_rng(4)
    n = 600
    y = (rng.random(n) < 0.4).astype(int)
    x = rng.normal(size=(n, 4))  # features carry no signal about y ...
    noisy = np.where(rng.random(n) < 0.05, 1 - y, y)  # ... and the judge is 95% right
    res = _run(x, y, noisy, iterations=2, flip_tol=0.0, combine="none")
    accs = [r.gold_accuracy["value"] for r in res.history]
    assert accs[0] > max(accs[1:])  # the history shows refinement by the classifier alone hurting
    assert res.selected == 0 and (res.labels == noisy).all()
    assert res.gold_fallback is None  # a classifier on the gold rows alone sees no signal either: the judge stands
    assert res.model_iteration == 1  # the classifier trained on the judge's labels, not a rejected iteration's
    stacked = _run(x, y, noisy, iterations=2, flip_tol=0.0)  # the default stacks the judge's verdict back in
    assert min(r.gold_accuracy["value"] for r in stacked.history[1:]) >= accs[0] - 0.05
    assert (stacked.labels == y).mean() >= (noisy == y).mean() - 0.02
    assert set(stacked.history[1].stacking) == {"classifier", "judge", "intercept"} and not res.history[1].stacking


def _uninformative_judge(sep: float, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = _data(sep=sep)
    noisy = (np.random.default_rng(seed).random(len(y)) < rate).astype(int)  # independent of the truth
    idx = sample_gold(noisy, 50, 0)
    assert GoldSet.from_strata(idx, y[idx], noisy).priors(noisy).delta < MIN_DELTA  # the case under test
    return x, y, noisy


def test_uninformative_judge_is_replaced_by_a_gold_only_classifier() -> None:
    x, y, noisy = _uninformative_judge(sep=4.0, rate=0.4, seed=12)
    with pytest.raises(UserError, match="too little signal"):
        _run(x, y, noisy, fallback="judge")
    res = _run(x, y, noisy)
    assert res.gold_fallback is not None and res.gold_fallback["gain_vs_judge"]["value"] > 0
    assert (res.labels == y).mean() > (noisy == y).mean() + 0.2  # 50 gold rows on separable features vs a coin
    assert res.model is not None and "gold rows alone" in res.stop_reason
    assert res.history_dict()["gold_fallback"]["n_gold"] == 50


def test_gold_only_classifier_that_does_not_help_is_not_used() -> None:
    # the features carry nothing either, and a judge that says 'harmful' on 10% of rows at random is about as
    # accurate as the majority class a 50-row classifier falls back to
    x, y, noisy = _uninformative_judge(sep=0.0, rate=0.1, seed=34)
    with pytest.raises(UserError, match="too little signal.*gold rows alone does not beat the judge on them either"):
        _run(x, y, noisy)


def test_last_rule_and_input_errors() -> None:
    x, y = _data()
    noisy = np.where(np.random.default_rng(5).random(len(y)) < 0.2, 1 - y, y)
    res = _run(x, y, noisy, iterations=2, select="last", flip_tol=0.0)
    assert res.selected == 2 and res.model_iteration == 2
    with pytest.raises(UserError, match="select 'best'"):
        _run(x, y, noisy, select="best")
    with pytest.raises(UserError, match="loss 'hinge'"):
        _run(x, y, noisy, loss="hinge")
    with pytest.raises(UserError, match="at least 1"):
        _run(x, y, noisy, iterations=0)
    with pytest.raises(UserError, match="combine 'vote'"):
        _run(x, y, noisy, combine="vote")
    with pytest.raises(UserError, match="fallback 'none'"):
        _run(x, y, noisy, fallback="none")


def _rec(t: int, acc: float, gain: float, se: float):
    from rlaif_uu.refine.loop import IterationRecord

    return IterationRecord(t, {}, 0.5, 0, 0, {"value": acc}, {"value": gain, "se": se})


def test_selection_needs_a_gain_beyond_the_margin() -> None:
    from rlaif_uu.refine.loop import select_iteration

    hist = [_rec(0, 0.80, 0.0, 0.0), _rec(1, 0.83, 0.03, 0.04), _rec(2, 0.86, 0.06, 0.03), _rec(3, 0.86, 0.06, 0.02)]
    assert select_iteration(hist) == 2  # 2 and 3 tie, the earliest wins
    assert select_iteration(hist, margin_se=1.0) == 2  # 1 is within one SE
    assert select_iteration(hist[:2]) == 1  # default margin 0: any gain
    assert select_iteration(hist[:2], margin_se=1.0) == 0  # a gain inside one SE keeps the judge's labels
    assert select_iteration([_rec(0, 0.80, 0.0, 0.0), _rec(1, 0.80, 0.0, 0.03)]) == 0  # no gain, no refinement


def test_paired_gain_matches_accuracy_difference() -> None:
    judge = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    truth = np.array([1, 0, 0, 1, 1, 0, 0, 0])
    gold = GoldSet.from_strata(np.array([0, 1, 2, 3, 4, 5]), truth[:6], judge)
    better = truth.copy()
    gain, se = gold.gain(better, judge)
    assert gain == pytest.approx(gold.accuracy(better).value - gold.accuracy(judge).value)
    assert se > 0
    assert gold.gain(judge, judge) == (0.0, 0.0)


def test_too_few_rows_left_after_the_gold_rows() -> None:
    x, y = _data(60)
    noisy = y.copy()
    idx = np.arange(45)  # gold rows never train: 15 remain
    with pytest.raises(UserError, match="only 15 rows are left to train on once the 45 gold rows"):
        refine([""] * 60, noisy, GoldSet.from_strata(idx, y[idx], noisy), SyntheticEncoder(x))
