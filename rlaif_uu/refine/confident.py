"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021, "Confident Learning: Estimating
Uncertainty in Dataset Labels"), implemented with numpy; the baseline refiner.

With out-of-fold predicted probabilities p̂(x) and noisy labels ỹ (classes 0..K−1):

* per-class thresholds t_j = mean of p̂_j(x) over the rows with ỹ = j            (Eq. 2)
* confident joint C[i, j] = |{x : ỹ = i, j = argmax_{l : p̂_l(x) ≥ t_l} p̂_l(x)}|   (Eq. 1)
* calibrated joint Q[i, j] ∝ C[i, j] / Σ_j C[i, j] · |X_{ỹ=i}|, normalised to sum 1 (Eq. 3)
* prune by noise rate (Sec. 3.2, "C_confusion ... prune_by_noise_rate"): for every i ≠ j remove
  the round(n·Q[i, j]) rows labelled i with the largest margin p̂_j(x) − p̂_i(x).

A classifier is then retrained on the rows that remain. The pruned rows are relabelled by it
(``relabel='pruned'``) or every row is (``relabel='all'``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.refine.classify import (
    RefinerOutput,
    logits_for,
    out_of_fold_logits,
    sigmoid,
    train_on_labels,
)
from rlaif_uu.refine.train import Backbone

RELABEL = ("pruned", "all")


def thresholds(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """t_j: the mean self-confidence p̂_j over the rows labelled j (Eq. 2)."""
    k = probs.shape[1]
    return np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """C[i, j]: rows labelled i confidently in class j (above t_j, highest such p̂); rows above no threshold drop out."""
    k = probs.shape[1]
    t = thresholds(probs, labels)
    above = probs >= t[None, :]
    masked = np.where(above, probs, -np.inf)
    true = masked.argmax(1)
    keep = above.any(1)
    joint = np.zeros((k, k), dtype=int)
    np.add.at(joint, (labels[keep], true[keep]), 1)
    return joint


def calibrate(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Q: each row of C rescaled to the observed count of its noisy class, then normalised to sum 1 (Eq. 3)."""
    k = joint.shape[0]
    counts = np.bincount(labels, minlength=k).astype(float)
    row = joint.sum(1, keepdims=True).astype(float)
    scaled = np.where(row > 0, joint / np.where(row > 0, row, 1.0), np.eye(k)) * counts[:, None]
    return scaled / scaled.sum()


def prune_by_noise_rate(probs: np.ndarray, labels: np.ndarray, joint: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the rows to prune: for each i ≠ j, the n·Q[i, j] rows of class i with the largest p̂_j − p̂_i."""
    q = calibrate(confident_joint(probs, labels) if joint is None else joint, labels)
    n, k = probs.shape
    prune = np.zeros(n, dtype=bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        for j in range(k):
            if i == j:
                continue
            m = min(round(n * q[i, j]), len(members))
            if m <= 0:
                continue
            margin = probs[members, j] - probs[members, i]
            prune[members[np.argsort(-margin, kind="stable")[:m]]] = True
    return prune


def confident_refine(texts: list[str], noisy: np.ndarray, backbone: Backbone, pool: np.ndarray, folds: int = 5,
                     relabel: str = "pruned", seed: int = 0) -> RefinerOutput:
    """Prune likely label errors among the ``pool`` rows, retrain on the rest, relabel.

    Args:
        noisy: 0/1 judge label of every row; pool: rows that may train (not gold, not held out).
        folds: cross-fitting folds for the out-of-fold probabilities.
        relabel: ``pruned`` (default; kept rows keep their label) or ``all`` (every row gets the classifier's).
    """
    check_choice("confident.relabel", relabel, RELABEL)
    noisy = np.asarray(noisy, dtype=int)
    pool = np.asarray(pool, dtype=int)
    backbone.prepare(texts)
    p = sigmoid(out_of_fold_logits(backbone, pool, noisy, folds, seed))
    probs = np.c_[1 - p, p]
    joint = confident_joint(probs, noisy[pool])
    pruned = prune_by_noise_rate(probs, noisy[pool], joint)
    kept = pool[~pruned]
    res = train_on_labels(backbone, kept, noisy, seed + 999, desc="retrain")
    g = logits_for(backbone, res, len(texts))
    labels = (g > 0).astype(int)
    if relabel == "pruned":
        labels[kept] = noisy[kept]
    diag: dict[str, Any] = {
        "confident_joint": joint.tolist(), "noise_matrix_Q": calibrate(joint, noisy[pool]).round(4).tolist(),
        "n_pool": len(pool), "n_pruned": int(pruned.sum()),
        "pruned_harmful": int(noisy[pool][pruned].sum()), "flipped": int((labels[pool] != noisy[pool]).sum()),
    }
    return RefinerOutput(labels, g, res.model, diag)
