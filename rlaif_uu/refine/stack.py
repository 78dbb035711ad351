"""Combine the refined classifier with the judge's own verdict, fitted on the gold rows.

The classifier g(x) sees only the text; the judge's verdict ỹ (or its score) is a
second, partly independent piece of evidence about the row. When the judge's
errors do not depend on the text given the true label (class-conditional noise,
ỹ ⟂ x | y), Bayes' rule gives

    logit P(y=1 | x, ỹ) = logit P(y=1 | x) + log P(ỹ | y=1) / P(ỹ | y=0),

so the posterior log-odds are affine in (g, ỹ) once g is calibrated:
s = α·g + γ·j + β, with j the judge's score when it has one, else its 0/1 label.
α, γ, β are fitted by weighted logistic regression on the gold rows (weights: their
inclusion weights, see :mod:`.priors`), which also calibrates g and lets γ shrink
when the judge adds nothing beyond g (judges whose errors follow the text).

Gold rows get out-of-fold scores (leave-one-out up to 50 rows, else 50 folds), so
their accuracy, the selection rule and the priors stay out-of-sample.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from rlaif_uu.refine.priors import GoldSet

MAX_FOLDS = 50
C = 1.0  # inverse L2 strength of the three-parameter fit (sklearn's default)


def _fit(features: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> LogisticRegression | None:
    if labels.min() == labels.max():
        return None
    return LogisticRegression(C=C).fit(features, labels, sample_weight=weights)


def stack_with_judge(g: np.ndarray, judge: np.ndarray, gold: GoldSet) -> tuple[np.ndarray, dict[str, float]]:
    """Posterior log-odds of harm for every row from the classifier logits and the judge's evidence.

    Args:
        g: classifier logits of every row (higher = more harmful).
        judge: the judge's score (higher = more harmful) or 0/1 label of every row.
        gold: the gold rows (both classes present).

    Returns:
        s for every row (gold rows hold out-of-fold values) and the fitted weights
        ``{"classifier": α, "judge": γ, "intercept": β}`` of the fit on every gold row.
    """
    x = np.c_[np.asarray(g, dtype=float), np.asarray(judge, dtype=float)]
    idx, y, w = gold.index, gold.labels, gold.weights
    full = _fit(x[idx], y, w)
    if full is None:  # one-class gold cannot calibrate; check_priors normally refuses it first
        return x[:, 0], {}
    s = full.decision_function(x)
    n_folds = min(len(idx), MAX_FOLDS)
    for train, held in KFold(n_splits=n_folds, shuffle=True, random_state=0).split(idx):
        model = _fit(x[idx[train]], y[train], w[train])
        s[idx[held]] = (model if model is not None else full).decision_function(x[idx[held]])
    alpha, gamma = (float(c) for c in full.coef_[0])
    return s, {"classifier": alpha, "judge": gamma, "intercept": float(full.intercept_[0])}
