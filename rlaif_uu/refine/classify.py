"""Supervised pieces the other refiners share: train on given labels, out-of-fold logits, sentence embeddings.

Every function trains the same backbones as robust UU (:mod:`rlaif_uu.refine.backbones`) with the
same loop (:func:`rlaif_uu.refine.train.fit`), only with the plain PN risk on the labels it is
given (harmful = 1 = positive; logit > 0 = harmful).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlaif_uu.errors import UserError
from rlaif_uu.refine.backbones import FrozenEncoder
from rlaif_uu.refine.losses import pn_risk
from rlaif_uu.refine.priors import GoldSet
from rlaif_uu.refine.train import Backbone, FitResult, fit, predict


@dataclass
class RefinerOutput:
    """What a refiner returns: labels and logits for every row, the classifier and its diagnostics."""

    labels: np.ndarray
    scores: np.ndarray
    model: torch.nn.Module | None
    diagnostics: dict[str, Any] = field(default_factory=dict)


def split_pool(pool: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions: a random ``val_fraction`` of ``pool`` (at least 2 rows) is held out to pick the epoch."""
    perm = np.random.default_rng(seed).permutation(np.asarray(pool, dtype=int))
    n_val = max(2, round(val_fraction * len(perm)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _sets(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rows[labels[rows] == 1], rows[labels[rows] == 0]


def train_on_labels(backbone: Backbone, rows: np.ndarray, labels: np.ndarray, seed: int, val_fraction: float = 0.1,
                    desc: str = "train") -> FitResult:
    """Train a fresh classifier with the PN risk on ``labels[rows]``; keep the epoch with the lowest held-out risk.

    Args:
        rows: positions to train on; may repeat a position to weight it (``val`` never repeats one).
        labels: 0/1 label of every corpus row (only ``rows`` are read).

    Raises:
        UserError: the rows hold only one class.
    """
    rows = np.asarray(rows, dtype=int)
    labels = np.asarray(labels, dtype=int)
    if len(np.unique(labels[rows])) < 2:
        raise UserError(f"all {len(np.unique(rows))} training rows carry the same label; a classifier needs both classes")
    unique = np.unique(rows)
    train_u, val = split_pool(unique, val_fraction, seed)
    train = rows[np.isin(rows, train_u)]  # repeats kept
    if len(np.unique(labels[val])) < 2 or len(np.unique(labels[train])) < 2:  # tiny sets: validate on the training rows
        train, val = rows, unique
    model = backbone.new_model(seed)
    return fit(backbone, model, _sets(train, labels), _sets(val, labels), pn_risk, pn_risk, seed, desc=desc)


def logits_for(backbone: Backbone, result: FitResult, n_rows: int) -> np.ndarray:
    """Logits of the trained classifier for every one of the ``n_rows`` corpus rows."""
    return predict(backbone, result.model, np.arange(n_rows))


def out_of_fold_logits(backbone: Backbone, rows: np.ndarray, labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Logits of every row in ``rows`` from a classifier that never saw it (``folds``-fold cross-fitting).

    Folds are stratified by label. Returns an array aligned with ``rows``.
    """
    rows = np.asarray(rows, dtype=int)
    if folds < 2:
        raise UserError(f"folds = {folds}; cross-fitting needs at least 2")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(rows), dtype=int)
    for c in (0, 1):
        members = np.flatnonzero(labels[rows] == c)
        fold_of[rng.permutation(members)] = np.arange(len(members)) % folds
    out = np.zeros(len(rows), dtype=float)
    for k in range(folds):
        test = fold_of == k
        res = train_on_labels(backbone, rows[~test], labels, seed + 101 * (k + 1), desc=f"fold {k + 1}/{folds}")
        out[test] = predict(backbone, res.model, rows[test])
    return out


GOLD_FOLDS = 5


@dataclass
class GoldClassifier:
    """A classifier trained on the gold rows alone, measured on them by cross-fitting.

    ``labels``/``scores`` cover every corpus row: the full-gold classifier's outside the gold rows,
    the out-of-fold ones on them, so ``gold.gain(labels, judge)`` is an out-of-sample comparison.
    """

    labels: np.ndarray
    scores: np.ndarray
    model: torch.nn.Module
    gain: float  # paired weighted gold-accuracy gain over the judge (GoldSet.gain)
    se: float
    accuracy: float
    judge_accuracy: float


def gold_classifier(backbone: Backbone, gold: GoldSet, judge: np.ndarray, seed: int) -> GoldClassifier | None:
    """Train on the gold rows only (PN risk) and compare it with the judge on them, cross-fitted.

    Folds are stratified by gold label (at most :data:`GOLD_FOLDS`, at most the smaller class's
    count); ``None`` when a class has fewer than 2 gold rows, so no fold could train on both.
    """
    n_rows = len(judge)
    y = np.zeros(n_rows, dtype=int)
    y[gold.index] = gold.labels
    folds = min(GOLD_FOLDS, int(np.bincount(gold.labels, minlength=2).min()))
    if folds < 2:
        return None
    oof = out_of_fold_logits(backbone, gold.index, y, folds, seed)
    full = train_on_labels(backbone, gold.index, y, seed, desc="gold rows")
    scores = logits_for(backbone, full, n_rows)
    scores[gold.index] = oof
    labels = (scores > 0).astype(int)
    gain, se = gold.gain(labels, judge)
    return GoldClassifier(labels, scores, full.model, gain, se, gold.accuracy(labels).value, gold.accuracy(judge).value)


def sentence_embeddings(texts: list[str], backbone: Backbone, model: str) -> np.ndarray:
    """L2-normalised sentence embeddings of every row (per turn, concatenated) for neighbour search.

    Reuses the frozen backbone's (or the encoder's linear-probe) cached embeddings when they come
    from ``model``; otherwise embeds with a frozen ``model`` (cached on disk like the frozen backbone).
    """
    for enc in (backbone, getattr(backbone, "probe", None)):
        if isinstance(enc, FrozenEncoder) and enc.model_name == model and enc.embeddings is not None:
            return enc.embeddings.numpy()
    enc = FrozenEncoder(model=model)
    enc.prepare(texts)
    assert enc.embeddings is not None
    return enc.embeddings.numpy()


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(z, dtype=float)))
