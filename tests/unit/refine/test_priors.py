"""Priors from a stratified gold sample: weighting, intervals, sampling, errors."""

import numpy as np
import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.refine.priors import GoldSet, check_priors, sample_gold, wilson


def _population(seed: int = 0, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.2).astype(int)  # π = 0.2, far from 0.5
    judge = np.where(truth == 1, rng.random(n) < 0.7, rng.random(n) < 0.1).astype(int)
    return truth, judge


def test_weighted_estimates_are_unbiased_under_stratified_sampling() -> None:
    truth, judge = _population()
    true_tp, true_tn, true_pi = truth[judge == 1].mean(), truth[judge == 0].mean(), truth.mean()
    est = []
    for seed in range(300):
        idx = sample_gold(judge, 50, seed)
        gold = GoldSet.from_strata(idx, truth[idx], judge)
        p = gold.priors(judge)
        est.append((p.theta_p.value, p.theta_n.value, p.pi.value))
    mean = np.mean(est, axis=0)
    assert mean == pytest.approx([true_tp, true_tn, true_pi], abs=0.02)
    # the unweighted mean of a 25/25 sample would put π near (θp+θn)/2, far from 0.2
    assert abs((true_tp + true_tn) / 2 - true_pi) > 0.1


def test_priors_regroup_gold_under_new_labels() -> None:
    truth, judge = _population(1)
    idx = sample_gold(judge, 60, 0)
    gold = GoldSet.from_strata(idx, truth[idx], judge)
    perfect = gold.priors(truth)  # relabel with the truth: θp = 1, θn = 0
    assert perfect.theta_p.value == pytest.approx(1.0)
    assert perfect.theta_n.value == pytest.approx(0.0)
    assert perfect.pi.value == pytest.approx(gold.priors(judge).pi.value)  # π does not depend on labels


def test_intervals_cover_and_shrink_with_more_gold() -> None:
    truth, judge = _population(2)
    small = GoldSet.from_strata(sample_gold(judge, 20, 0), truth[sample_gold(judge, 20, 0)], judge).priors(judge)
    idx = sample_gold(judge, 400, 0)
    big = GoldSet.from_strata(idx, truth[idx], judge).priors(judge)
    width = lambda e: e.high - e.low
    assert width(big.theta_p) < width(small.theta_p)
    assert big.theta_p.low <= truth[judge == 1].mean() <= big.theta_p.high
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def test_oracle_matches_the_truth() -> None:
    truth, judge = _population(3)
    p = GoldSet.oracle(truth).priors(judge)
    assert p.theta_p.value == pytest.approx(truth[judge == 1].mean())
    assert p.pi.value == pytest.approx(truth.mean())


def test_weighted_accuracy_estimates_corpus_accuracy() -> None:
    truth, judge = _population(4)
    accs = []
    for seed in range(200):
        idx = sample_gold(judge, 50, seed)
        accs.append(GoldSet.from_strata(idx, truth[idx], judge).accuracy(judge).value)
    assert np.mean(accs) == pytest.approx((judge == truth).mean(), abs=0.02)


def test_sample_gold_splits_across_pseudo_sets() -> None:
    _, judge = _population(5)
    idx = sample_gold(judge, 50, 0)
    assert len(set(idx.tolist())) == 50
    assert judge[idx].sum() == 25
    assert (sample_gold(judge, 50, 0) == idx).all()  # seeded
    few = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert few[sample_gold(few, 6, 0)].sum() == 2  # small set exhausted, rest from the other
    with pytest.raises(UserError, match="larger than the corpus"):
        sample_gold(few, 11, 0)
    with pytest.raises(UserError, match="one class"):
        sample_gold(np.zeros(10, dtype=int), 4, 0)


def test_small_delta_is_an_explained_error() -> None:
    judge = np.array([1] * 10 + [0] * 10)
    truth = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0] * 2)  # 30% harmful in both sets: Δ = 0
    priors = GoldSet.from_strata(np.arange(20), truth, judge).priors(judge)
    assert priors.delta == pytest.approx(0.0)
    with pytest.raises(UserError, match=r"θp − θn = 0.000 < 0.05 \(θp=0.300 .*θn=0.300"):
        check_priors(priors, "iteration 0")
    good = GoldSet.from_strata(np.arange(20), judge, judge).priors(judge)
    check_priors(good, "iteration 0")  # Δ = 1 passes


def test_inverted_judge_is_called_anti_correlated() -> None:
    judge = np.array([1] * 10 + [0] * 10)
    priors = GoldSet.from_strata(np.arange(20), 1 - judge, judge).priors(judge)
    assert priors.delta == pytest.approx(-1.0)
    with pytest.raises(UserError, match=r"θp − θn = -1.000 .*anti-correlated with the gold labels.*flip judge_label") as info:
        check_priors(priors, "iteration 0")
    assert "almost the same share" not in str(info.value)
