"""Active learning with a human budget after LAUD (Wu et al., 2025, "LAUD: Integrating Large Language
Models with Active Learning for Unlabeled Data").

LAUD's loop: the LLM labels everything zero-shot (cold start), a classifier trains on those labels,
a query strategy picks rows for a person, their labels replace the LLM's, the classifier retrains,
until the budget is spent. Here the LLM is the judge and the query score of row x is

    s(x) = w_u · U(x) + w_d · D(x) + w_j · J(x)

* U = 1 − |2p − 1|, the classifier's uncertainty (p = σ(g(x)), uncertainty sampling);
* D = |p − ỹ|, disagreement between the refined classifier and the judge label ỹ;
* J = 1 − |2v − 1|, disagreement between judges (v = share of per-judge labels saying harmful; 0 with one judge).

``strategy='random'`` draws uniformly instead (the passive baseline); ``strategy='stratified'`` draws at
random, half among the rows the judge calls harmful and half among the rest. The query score's top
rows are the ones the judge most often gets wrong, so a gold set made of them is no sample of the
corpus, and robust UU estimates its priors θp, θn and picks its iteration on the gold rows: on the
multi-corpus benchmark (``eval/results/gold_allocation.md``) it fell below the raw judge with such
gold on several corpora; random and stratified gold stay representative. For a reward, though, the
query's rows are the ones that expose a judge's systematic error (``eval/results/ladder_dpo_qwen_stratified.md``),
so the rounds pipeline keeps ``mixed`` as its default.

Each round trains on every pool row with its judge label, replaced by the human label where there
is one; human rows count ``human_weight`` times. The file-based, resumable workflow is in :mod:`rlaif_uu.refine.queue`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError
from rlaif_uu.refine.classify import RefinerOutput, logits_for, sigmoid, train_on_labels
from rlaif_uu.refine.ensemble import majority
from rlaif_uu.refine.priors import sample_gold
from rlaif_uu.refine.train import Backbone

STRATEGIES = ("mixed", "uncertainty", "random", "stratified")


@dataclass(frozen=True)
class QueryWeights:
    """w_u, w_d, w_j of the query score."""

    uncertainty: float = 1.0
    model_judge: float = 1.0
    judges: float = 1.0


def query_scores(logits: np.ndarray, judge: np.ndarray, votes: np.ndarray | None, weights: QueryWeights) -> np.ndarray:
    """s(x) for every row (see the module docstring)."""
    p = sigmoid(logits)
    s = weights.uncertainty * (1 - np.abs(2 * p - 1)) + weights.model_judge * np.abs(p - judge)
    if votes is not None and votes.shape[1] > 1:
        s = s + weights.judges * (1 - np.abs(2 * majority(votes) - 1))
    return s


def select(scores: np.ndarray, candidates: np.ndarray, n: int, strategy: str, seed: int,
           judge: np.ndarray | None = None) -> np.ndarray:
    """The ``n`` candidate positions to ask about: the highest scores (ties broken at random), or random ones.

    ``stratified`` needs ``judge`` (0/1 per row); with only one judge label among the candidates it draws
    uniformly.
    """
    check_choice("active.strategy", strategy, STRATEGIES)
    rng = np.random.default_rng(seed)
    candidates = np.asarray(candidates, dtype=int)
    n = min(n, len(candidates))
    if strategy == "stratified":
        if judge is None:
            raise ValueError("select(strategy='stratified') needs the judge labels")
        strata = np.asarray(judge, dtype=int)[candidates]
        if 0 < strata.sum() < len(strata):
            return np.sort(candidates[sample_gold(strata, n, seed)])
        strategy = "random"
    if strategy == "random":
        return np.sort(rng.choice(candidates, size=n, replace=False))
    jitter = rng.random(len(candidates)) * 1e-9
    order = np.lexsort((jitter, -scores[candidates]))
    return np.sort(candidates[order[:n]])


def check_budget(budget: int, batch: int, pool_size: int, source: str = "--budget") -> None:
    """Raise a :class:`UserError` for a budget or batch that cannot be met."""
    if batch < 1:
        raise UserError(f"--batch {batch}: each round must ask about at least 1 row")
    if budget < 1:
        raise UserError(f"{source} {budget}: the human budget must be at least 1 row")
    if budget > pool_size:
        raise UserError(
            f"{source} {budget} is larger than the pool of {pool_size} rows a person could label (input rows minus "
            f"gold rows); lower the budget to at most {pool_size}"
        )


def train_with_answers(backbone: Backbone, texts: list[str], judge: np.ndarray, pool: np.ndarray,
                       human: dict[int, int], human_weight: int, seed: int) -> tuple[np.ndarray, torch.nn.Module]:
    """Train on the pool's judge labels overridden by the human answers; logits of every row and the model."""
    labels = np.asarray(judge, dtype=int).copy()
    asked = np.array(sorted(human), dtype=int)
    if len(asked):
        labels[asked] = [human[i] for i in asked]
    rows = np.concatenate([pool, np.repeat(asked, max(0, human_weight - 1))]) if len(asked) else pool
    res = train_on_labels(backbone, rows, labels, seed, desc="active round")
    return logits_for(backbone, res, len(texts)), res.model


@dataclass
class ActiveRound:
    """One round of the loop: labels spent so far and what the classifier then scored."""

    round: int
    labels_spent: int
    asked: list[int] = field(default_factory=list)
    human_flips_judge: int = 0
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)


def run_active(
    texts: list[str],
    judge: np.ndarray,
    backbone: Backbone,
    pool: np.ndarray,
    annotate: Callable[[np.ndarray], np.ndarray],
    budget: int,
    batch: int,
    votes: np.ndarray | None = None,
    strategy: str = "mixed",
    weights: QueryWeights = QueryWeights(),
    human_weight: int = 3,
    seed: int = 0,
    measure: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> tuple[RefinerOutput, list[ActiveRound]]:
    """The whole loop in one process, answers from ``annotate(positions) -> 0/1 labels`` (a person or a simulator).

    Round 0 trains on the judge labels alone (LAUD's zero-shot cold start); every later round asks
    ``batch`` rows (the last one fewer), retrains, and calls ``measure(logits)`` when given.

    Returns:
        The final classifier's output (human labels where asked, its own elsewhere) and the rounds.
    """
    judge = np.asarray(judge, dtype=int)
    pool = np.asarray(pool, dtype=int)
    check_budget(budget, batch, len(pool))
    backbone.prepare(texts)
    human: dict[int, int] = {}
    rounds: list[ActiveRound] = []
    t0 = time.perf_counter()
    g, model = train_with_answers(backbone, texts, judge, pool, human, human_weight, seed)
    rounds.append(ActiveRound(0, 0, seconds=time.perf_counter() - t0, metrics=measure(g) if measure else {}))
    r = 0
    while len(human) < budget:
        r += 1
        t0 = time.perf_counter()
        open_rows = np.setdiff1d(pool, np.array(sorted(human), dtype=int))
        ask = select(query_scores(g, judge, votes, weights), open_rows, min(batch, budget - len(human)), strategy, seed + r,
                     judge)
        answers = np.asarray(annotate(ask), dtype=int)
        human |= dict(zip(ask.tolist(), answers.tolist()))
        g, model = train_with_answers(backbone, texts, judge, pool, human, human_weight, seed + r)
        rounds.append(ActiveRound(r, len(human), ask.tolist(), int((answers != judge[ask]).sum()),
                                  time.perf_counter() - t0, measure(g) if measure else {}))
    labels = (g > 0).astype(int)
    for i, y in human.items():
        labels[i] = y
    diag: dict[str, Any] = {"labels_spent": len(human), "rounds": len(rounds) - 1, "strategy": strategy,
                            "human_flips_judge": sum(rd.human_flips_judge for rd in rounds)}
    return RefinerOutput(labels, g, model, diag), rounds
