"""Judge ensembles: each judge a weak labeller, aggregated by its estimated accuracy.

Dawid & Skene (1979), "Maximum likelihood estimation of observer error-rates using the EM
algorithm", binary case. Judge j has sensitivity α_j = P(ỹ_j = 1 | y = 1) and specificity
β_j = P(ỹ_j = 0 | y = 0) (``two_coin``), or one accuracy a_j = α_j = β_j (``one_coin``).
Judges are assumed conditionally independent given the true label y.

* E-step: T_i = P(y_i = 1 | ỹ_i) ∝ π Π_j α_j^{ỹ_ij} (1−α_j)^{1−ỹ_ij} against
  (1−π) Π_j (1−β_j)^{ỹ_ij} β_j^{1−ỹ_ij}, over the judges that labelled row i.
* M-step: π = mean T; α_j = Σ T_i ỹ_ij / Σ T_i; β_j = Σ (1−T_i)(1−ỹ_ij) / Σ (1−T_i)
  (Laplace-smoothed, over labelled rows). Gold rows are clamped to their labels (T_i = y_i),
  which anchors the latent class to "harmful" and removes the label-swap ambiguity.

EM starts from the majority vote. The aggregate labels (T > 0.5) then feed robust UU, a
classifier, or are returned as they are (``rlaif-uu refine --method ensemble``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError

MODELS = ("two_coin", "one_coin")


@dataclass
class DawidSkene:
    """The fitted aggregate: posterior of harm per row and each judge's error rates."""

    posterior: np.ndarray  # T_i = P(y_i = 1 | judge labels)
    sensitivity: np.ndarray  # α_j
    specificity: np.ndarray  # β_j
    prior: float  # π
    iterations: int

    @property
    def labels(self) -> np.ndarray:
        """Aggregate 0/1 labels (posterior > 0.5)."""
        return (self.posterior > 0.5).astype(int)

    @property
    def log_odds(self) -> np.ndarray:
        """log T / (1 − T): the aggregate judge score, higher = more harmful."""
        t = np.clip(self.posterior, 1e-9, 1 - 1e-9)
        return np.log(t) - np.log1p(-t)

    def accuracy(self) -> np.ndarray:
        """Each judge's estimated accuracy π·α_j + (1−π)·β_j."""
        return self.prior * self.sensitivity + (1 - self.prior) * self.specificity


def majority(votes: np.ndarray) -> np.ndarray:
    """Share of non-abstaining judges that say harmful, per row (votes: (n_rows, n_judges), −1 = none)."""
    seen = (votes >= 0).sum(1)
    return np.where(seen > 0, (votes == 1).sum(1) / np.maximum(seen, 1), 0.5)


def dawid_skene(votes: np.ndarray, model: str = "two_coin", gold_index: np.ndarray | None = None,
                gold_labels: np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-6) -> DawidSkene:
    """Fit binary Dawid-Skene by EM.

    Args:
        votes: (n_rows, n_judges) labels 0/1, −1 where a judge abstained.
        model: ``two_coin`` (sensitivity + specificity per judge) or ``one_coin`` (one accuracy).
        gold_index / gold_labels: rows with known labels, clamped during EM.

    Raises:
        UserError: an unknown model, or a row no judge labelled.
    """
    check_choice("ensemble.model", model, MODELS)
    votes = np.asarray(votes, dtype=int)
    seen = votes >= 0
    if not seen.any(1).all():
        raise UserError(f"{int((~seen.any(1)).sum())} row(s) have no label from any judge; drop them or judge them")
    y1, y0 = (votes == 1) & seen, (votes == 0) & seen
    t = majority(votes)
    t = np.where(t == 0.5, 0.5, (t > 0.5).astype(float) * 0.9 + 0.05)
    clamp = gold_index is not None and gold_labels is not None and len(gold_index) > 0
    if clamp:
        t[gold_index] = gold_labels
    prev = np.inf
    alpha = beta = np.full(votes.shape[1], 0.7)
    pi = float(t.mean())
    it = 0
    for it in range(1, max_iter + 1):
        pi = float(np.clip(t.mean(), 1e-3, 1 - 1e-3))
        tp, tn = t[:, None] * seen, (1 - t)[:, None] * seen
        alpha = ((t[:, None] * y1).sum(0) + 1) / (tp.sum(0) + 2)
        beta = (((1 - t)[:, None] * y0).sum(0) + 1) / (tn.sum(0) + 2)
        if model == "one_coin":
            acc = ((t[:, None] * y1).sum(0) + ((1 - t)[:, None] * y0).sum(0) + 1) / (seen.sum(0) + 2)
            alpha = beta = acc
        alpha, beta = np.clip(alpha, 1e-4, 1 - 1e-4), np.clip(beta, 1e-4, 1 - 1e-4)
        log_pos = np.log(pi) + (y1 * np.log(alpha) + y0 * np.log(1 - alpha)).sum(1)
        log_neg = np.log(1 - pi) + (y1 * np.log(1 - beta) + y0 * np.log(beta)).sum(1)
        new = 1.0 / (1.0 + np.exp(np.clip(log_neg - log_pos, -50, 50)))
        if clamp:
            new[gold_index] = gold_labels
        delta = float(np.abs(new - t).max())
        t = new
        if delta < tol or delta == prev:
            break
        prev = delta
    return DawidSkene(t, alpha, beta, pi, it)


def accuracy_weighted(votes: np.ndarray, gold_index: np.ndarray, gold_labels: np.ndarray) -> np.ndarray:
    """Posterior of harm from per-judge sensitivity/specificity measured on the gold rows alone (no EM).

    The naive-Bayes vote of Dawid-Skene with its parameters fixed at their gold estimates (Laplace-smoothed).
    """
    votes = np.asarray(votes, dtype=int)
    g = votes[gold_index]
    y = np.asarray(gold_labels, dtype=int)[:, None]
    alpha = (((g == 1) & (y == 1)).sum(0) + 1) / (((g >= 0) & (y == 1)).sum(0) + 2)
    beta = (((g == 0) & (y == 0)).sum(0) + 1) / (((g >= 0) & (y == 0)).sum(0) + 2)
    pi = float(np.clip(np.mean(gold_labels), 0.02, 0.98))
    seen = votes >= 0
    y1, y0 = (votes == 1) & seen, (votes == 0) & seen
    log_pos = np.log(pi) + (y1 * np.log(alpha) + y0 * np.log(1 - alpha)).sum(1)
    log_neg = np.log(1 - pi) + (y1 * np.log(1 - beta) + y0 * np.log(beta)).sum(1)
    return 1.0 / (1.0 + np.exp(np.clip(log_neg - log_pos, -50, 50)))


def check_coverage(votes: np.ndarray, names: list[str], ids: list[str], source: str) -> None:
    """Raise a :class:`UserError` when the judges labelled different rows.

    Args:
        votes: (n_rows, n_judges), −1 = no label; names: the judges; ids: row ids; source: the input file.
    """
    seen = votes >= 0
    full = seen.all(1)
    if full.all():
        return
    counts = seen.sum(0)
    j = int(np.argmin(counts))
    row = int(np.flatnonzero(~seen[:, j])[0])
    raise UserError(
        f"{source}: the judges cover different rows ({', '.join(f'{n}: {c}' for n, c in zip(names, counts))} of {len(ids)} "
        f"rows labelled; e.g. row id {ids[row]!r} has no '{names[j]}_label'); judge every row with every judge "
        "(rerun `rlaif-uu label` on the same input), drop the judge with ensemble.judges=[...], "
        "or pass ensemble.allow_missing=true to let missing labels abstain"
    )
