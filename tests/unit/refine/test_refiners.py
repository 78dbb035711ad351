"""The other refiners on synthetic data: confident learning, Dawid-Skene, neighbourhood retrieval, active learning."""

from __future__ import annotations

import numpy as np
import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.refine.active import (
    QueryWeights,
    check_budget,
    query_scores,
    run_active,
    select,
)
from rlaif_uu.refine.confident import (
    calibrate,
    confident_joint,
    confident_refine,
    prune_by_noise_rate,
)
from rlaif_uu.refine.ensemble import (
    accuracy_weighted,
    check_coverage,
    dawid_skene,
    majority,
)
from rlaif_uu.refine.neighbourhood import (
    candidates,
    centroid_distance,
    knn_label_distribution,
    neighbourhood_refine,
)
from tests.unit.refine.test_loop import SyntheticEncoder
from tests.unit.refine.test_loop import _data as gaussian_data


def _data(n: int = 400, seed: int = 0, sep: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    return gaussian_data(n, seed, sep, pi=0.4)


def _flip(y: np.ndarray, rate: float, seed: int) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(len(y)) < rate, 1 - y, y)


# confident learning -----------------------------------------------------------------------------

def test_confident_joint_counts_rows_above_per_class_thresholds() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # t0 = mean p0 over label-0 rows = (0.9+0.8+0.2)/3 = 0.633; t1 = (0.7+0.9+0.4)/3 = 0.667
    joint = confident_joint(probs, labels)
    assert joint.tolist() == [[2, 1], [0, 2]]  # row 5 (p0 0.6 < t0, p1 0.4 < t1) is counted nowhere
    q = calibrate(joint, labels)
    assert q.sum() == pytest.approx(1.0) and q[0, 1] == pytest.approx(1 / 6)


def test_prune_by_noise_rate_finds_flipped_labels() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(1000) < 0.5).astype(int)
    p1 = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.1, len(y)), 0.01, 0.99)
    noisy = _flip(y, 0.2, 1)
    prune = prune_by_noise_rate(np.c_[1 - p1, p1], noisy)
    wrong = noisy != y
    assert abs(prune.sum() - wrong.sum()) < 0.3 * wrong.sum()  # the noise rate is estimated
    assert wrong[prune].mean() > 0.8  # and the pruned rows are mostly the flipped ones


def test_confident_refine_beats_noisy_labels() -> None:
    x, y = _data()
    noisy = _flip(y, 0.25, 2)
    out = confident_refine([""] * len(y), noisy, SyntheticEncoder(x), np.arange(len(y)), folds=3, seed=0)
    assert (out.labels == y).mean() > (noisy == y).mean() + 0.05
    assert out.diagnostics["n_pruned"] > 0 and out.model is not None


# ensembles -------------------------------------------------------------------------------------

def _votes(y: np.ndarray, rates: tuple[float, ...], seed: int = 0) -> np.ndarray:
    return np.stack([_flip(y, r, seed + j) for j, r in enumerate(rates)], axis=1)


def test_dawid_skene_estimates_each_judges_accuracy() -> None:
    y = (np.random.default_rng(3).random(3000) < 0.3).astype(int)
    votes = _votes(y, (0.05, 0.2, 0.35, 0.4))
    ds = dawid_skene(votes)
    true_acc = (votes == y[:, None]).mean(0)
    assert np.abs(ds.accuracy() - true_acc).max() < 0.04
    assert (ds.labels == y).mean() > ((majority(votes) > 0.5) == y).mean()  # weighting beats the plain vote
    assert ds.prior == pytest.approx(y.mean(), abs=0.03)


def test_one_coin_and_gold_weighted_variants() -> None:
    y = (np.random.default_rng(4).random(2000) < 0.5).astype(int)
    votes = _votes(y, (0.1, 0.3, 0.45))
    one = dawid_skene(votes, "one_coin")
    assert np.allclose(one.sensitivity, one.specificity) and one.accuracy()[0] > one.accuracy()[2]
    gold = np.arange(100)
    post = accuracy_weighted(votes, gold, y[gold])
    assert ((post > 0.5) == y).mean() > 0.85


def test_abstentions_and_coverage_errors() -> None:
    y = np.array([0, 1] * 50)
    votes = _votes(y, (0.1, 0.2))
    votes[:5, 1] = -1
    with pytest.raises(UserError, match=r"judges cover different rows \(a: 100, b: 95 of 100.*'r0' has no 'b_label'"):
        check_coverage(votes, ["a", "b"], [f"r{i}" for i in range(100)], "in.jsonl")
    assert dawid_skene(votes).posterior.shape == (100,)  # with allow_missing the gaps abstain
    votes[0] = -1
    with pytest.raises(UserError, match="no label from any judge"):
        dawid_skene(votes)


# neighbourhood ---------------------------------------------------------------------------------

def test_knn_distribution_and_candidates() -> None:
    emb = np.array([[1, 0], [0.99, 0.1], [0.98, -0.1], [0, 1], [0.1, 0.99], [0.7, 0.7]], dtype=float)
    labels = np.array([0, 0, 0, 1, 1, 1])
    q = knn_label_distribution(emb, np.array([0, 5]), np.array([1, 2, 3, 4]), labels, k=2)
    assert q[0].tolist() == [1.0, 0.0]  # row 0's two nearest clean rows are 1 and 2 (label 0)
    cand = candidates(np.array([[0.9, 0.1], [0.6, 0.4]]), certain=0.8, two=0.95)
    assert cand.tolist() == [[True, False], [True, True]]
    three = candidates(np.array([[0.5, 0.46, 0.04]]), certain=0.8, two=0.95)
    assert three.tolist() == [[True, True, False]]
    with pytest.raises(UserError, match="neighbourhood.k = 5 neighbours but only 4 rows were judged clean"):
        knn_label_distribution(emb, np.array([0]), np.array([1, 2, 3, 4]), labels, k=5)


def test_centroid_distance_ranks_wrong_labels_higher() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.5).astype(int)
    noisy = _flip(y, 0.2, 5)
    p = np.clip(np.where(y == 1, 0.85, 0.15)[:, None] + rng.normal(0, 0.05, (300, 4)), 0, 1)  # 4 epochs of p(harmful)
    dyn = np.stack([1 - p, p], axis=2).reshape(300, -1)
    for kind in ("signed", "cosine"):
        d = centroid_distance(dyn, noisy, kind)
        assert d[noisy != y].mean() > d[noisy == y].mean() + 0.1


def test_neighbourhood_refine_runs_and_keeps_labels_where_sure() -> None:
    x, y = _data(seed=1)
    noisy = _flip(y, 0.2, 6)
    out = neighbourhood_refine([""] * len(y), noisy, SyntheticEncoder(x), x, np.arange(len(y)), k=10, seed=0)
    assert (out.labels == y).mean() > (noisy == y).mean()
    assert out.diagnostics["n_flagged"] > 0 and out.diagnostics["flipped"] > 0


# active learning -------------------------------------------------------------------------------

def test_query_scores_and_selection() -> None:
    logits = np.array([0.0, 5.0, -5.0, 5.0])
    judge = np.array([1, 1, 0, 0])
    s = query_scores(logits, judge, None, QueryWeights())
    # undecided (U = 1, D = 0.5) > confident disagreement with the judge (U ≈ 0, D ≈ 1) > confident agreement
    assert s[0] > s[3] > s[1] and s[1] == pytest.approx(s[2])
    votes = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    assert query_scores(logits, judge, votes, QueryWeights())[0] > s[0]
    assert select(s, np.array([1, 2, 3]), 2, "mixed", 0).tolist()[1] == 3  # row 0 is not a candidate
    assert select(s, np.array([0, 1, 3]), 2, "mixed", 0).tolist() == [0, 3]
    assert len(set(select(s, np.arange(4), 4, "random", 0).tolist())) == 4
    with pytest.raises(UserError, match="--budget 500 is larger than the pool of 60 rows"):
        check_budget(500, 25, 60)
    with pytest.raises(UserError, match="strategy 'best' is unknown"):
        select(s, np.arange(4), 1, "best", 0)


def test_stratified_selection_draws_half_per_judge_label_at_random() -> None:
    judge = np.array([1] * 10 + [0] * 90)
    candidates = np.arange(5, 100)  # rows 5-9 are the only pseudo-harmful candidates
    picks = [select(np.zeros(100), candidates, 10, "stratified", seed, judge) for seed in range(20)]
    assert all(len(p) == 10 and set(p) <= set(candidates.tolist()) for p in picks)
    assert all((judge[p] == 1).sum() == 5 for p in picks)  # half where the judge says harmful, though they are 5%
    assert len({tuple(p) for p in picks}) > 1  # at random, seeded
    assert select(np.zeros(100), candidates, 10, "stratified", 3, judge).tolist() == picks[3].tolist()
    only_safe = select(np.zeros(100), np.arange(10, 100), 10, "stratified", 0, judge)  # one stratum: uniform draw
    assert len(set(only_safe.tolist())) == 10 and (judge[only_safe] == 0).all()
    with pytest.raises(ValueError, match="needs the judge labels"):
        select(np.zeros(100), candidates, 10, "stratified", 0)


def test_active_loop_spends_the_budget_and_learns() -> None:
    x, y = _data(seed=2)
    noisy = np.where(y == 1, _flip(y, 0.45, 7), y)  # a judge that misses 45% of harmful rows
    test = np.arange(300, 400)
    acc = lambda g: {"acc": float(((g[test] > 0) == y[test]).mean())}
    asked: list[int] = []

    def annotate(rows: np.ndarray) -> np.ndarray:
        asked.extend(rows.tolist())
        return y[rows]

    out, rounds = run_active([""] * 400, noisy, SyntheticEncoder(x), np.arange(300), annotate, budget=60, batch=25,
                             seed=0, measure=acc)
    assert [r.labels_spent for r in rounds] == [0, 25, 50, 60]
    assert len(asked) == len(set(asked)) == 60 and max(asked) < 300  # never the held-out rows, never twice
    assert (out.labels[asked] == y[asked]).all()
    assert rounds[-1].metrics["acc"] > rounds[0].metrics["acc"]
    assert sum(r.human_flips_judge for r in rounds) > 0


def test_gold_guard_keeps_a_refiner_only_on_a_clear_gain(capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from rlaif_uu.refine.classify import RefinerOutput
    from rlaif_uu.refine.config import RefineConfig
    from rlaif_uu.refine.methods import gold_guard
    from rlaif_uu.refine.priors import GoldSet

    x, y = gaussian_data(n=200)
    gold_idx = np.arange(40)
    gold = GoldSet(gold_idx, y[gold_idx], np.ones(40))
    judge = y.copy()
    judge[:10] = 1 - judge[:10]  # the judge is wrong on 10 of the 40 gold rows
    pool = np.arange(40, 200)
    unclear, clear = judge.copy(), judge.copy()
    unclear[:3] = y[:3]  # fixes 3 gold rows, breaks 2: D = +1/40, SE ≈ 0.056
    unclear[20:22] = 1 - y[20:22]
    clear[:6] = y[:6]  # fixes 6, breaks none: D = 0.15, SE ≈ 0.057
    cfg = RefineConfig(input="in.jsonl", out="out", method="neighbourhood")
    backbone = SyntheticEncoder(x)
    backbone.prepare([""] * len(y))
    out = lambda labels: RefinerOutput(labels, labels.astype(float), None)

    kept, info = gold_guard(cfg, gold, out(clear), judge, backbone, pool)
    assert not info["fell_back"] and (kept.labels == clear).all()
    back, info = gold_guard(cfg, gold, out(unclear), judge, backbone, pool)
    assert info["fell_back"] and 0 < info["gain_vs_judge"] < info["se"] and (back.labels == judge).all()
    assert "needs > 1 SE): using the judge's labels instead" in capsys.readouterr().out
    loose = dataclasses.replace(cfg, guard_margin_se=0.0)  # any positive gain passes
    assert not gold_guard(loose, gold, out(unclear), judge, backbone, pool)[1]["fell_back"]
