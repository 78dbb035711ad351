"""Iterative robust-UU label refinement (Asano, Kozuno & Baba, "Self Iterative Label Refinement via Robust
Unlabeled Learning", arXiv:2502.12565), with gold-row priors, selection and judge stacking added.

Iteration t (1..K):
  1. priors θp, θn, π re-estimated from the gold rows under the current labels;
  2. a classifier re-initialised from the base model is trained on (P̃_t, Ñ_t) with
     the chosen risk; the epoch with the lowest risk on a held-out pseudo-labelled
     slice is kept;
  3. every row is relabelled by the sign of its score: with ``combine="judge"`` (default)
     the posterior log-odds of the classifier and the judge's verdict stacked on the gold
     rows (:mod:`.stack`), with ``combine="none"`` the classifier's g alone; the share of
     flipped labels is recorded.

Gold rows never enter training and get out-of-fold stacked scores, so the accuracy
on them is an out-of-sample estimate (weighted to the corpus, see :mod:`.priors`).

Selection rule ``gold`` (default): an iteration t ≥ 1 is eligible when its paired
gain in weighted gold accuracy over the judge's own labels (iteration 0) exceeds
``margin_se`` standard errors (default 0: any gain); the eligible iteration with the
highest gold accuracy is returned (ties: the earliest), else iteration 0. It uses
only the gold labels the priors already need; refinement that loses to the judge on
them is never returned (it stays visible in the history); the classifier that comes with
iteration 0 is iteration 1's, the one trained on the judge's labels. A margin of 1 SE was the
default before stacking: with the judge's verdict stacked in, every iteration's labels
start from the judge's evidence, and the 1-SE margin then threw away real gains
(eval/results/refine_frozen.md: 0.816 vs 0.838 under simulated noise). ``last``
returns the final iteration.

Fall-back ``fallback="gold"`` (default): when the judge's labels would be returned (no iteration
beats them, or Δ at iteration 0 is under ``MIN_DELTA`` without the judge being clearly flipped),
a classifier trained on the gold rows alone is compared with the judge on those rows by
cross-fitting (:func:`.classify.gold_classifier`), and its labels are returned when its paired
gain exceeds ``margin_se`` SE, so a judge that carries no usable signal does not waste the gold
budget (eval/results/refine_corpora.md). ``fallback="judge"`` keeps the judge's labels.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError
from rlaif_uu.refine import losses
from rlaif_uu.refine.classify import gold_classifier
from rlaif_uu.refine.priors import MIN_DELTA, GoldSet, Priors, check_priors, weak_signal
from rlaif_uu.refine.stack import stack_with_judge
from rlaif_uu.refine.train import Backbone, Risk, fit, predict

LOSSES = ("robust_uu", "uu", "pn")
SELECT_RULES = ("gold", "last")
COMBINE = ("judge", "none")
FALLBACKS = ("gold", "judge")


def make_risk(loss: str, priors: Priors, lam: float) -> tuple[Risk, Risk]:
    """The training risk and the validation risk (robust UU for the UU losses) for ``loss``."""
    if loss == "pn":
        return losses.pn_risk, losses.pn_risk
    k = losses.UUCoefficients.from_priors(priors.theta_p.value, priors.theta_n.value, priors.pi.value)
    robust: Risk = partial(losses.robust_uu_risk, k=k, lam=lam)
    if loss == "uu":
        return partial(losses.uu_risk, k=k), robust
    if loss == "robust_uu":
        return robust, robust
    raise UserError(f"loss '{loss}' is unknown; use one of {', '.join(LOSSES)}")


@dataclass
class IterationRecord:
    """Diagnostics of one iteration (iteration 0 = the judge's labels)."""

    iteration: int
    priors: dict[str, dict[str, float]]
    delta: float
    n_harmful: int
    flipped: int
    gold_accuracy: dict[str, float]
    gain_vs_judge: dict[str, float] = field(default_factory=dict)
    val_loss: float | None = None
    best_epoch: int | None = None
    stacking: dict[str, float] = field(default_factory=dict)  # combine=judge: the weights of g, the judge and 1
    seconds: float = 0.0
    note: str = ""


@dataclass
class RefineResult:
    """Labels and scores of the selected iteration, the full history and the classifier."""

    labels: np.ndarray
    scores: np.ndarray | None
    selected: int
    history: list[IterationRecord]
    stop_reason: str
    model: torch.nn.Module | None = None
    model_iteration: int | None = None
    all_scores: dict[int, np.ndarray] = field(default_factory=dict)  # per iteration: the scores its labels came from
    classifier_scores: dict[int, np.ndarray] = field(default_factory=dict)  # per iteration: the classifier's g alone
    gold_fallback: dict[str, Any] | None = None  # set when the labels come from the gold-only classifier

    def history_dict(self) -> dict[str, Any]:
        """JSON form of the run's history."""
        return {
            "selected_iteration": self.selected,
            "classifier_iteration": self.model_iteration,
            "stop_reason": self.stop_reason,
            "iterations": [asdict(r) for r in self.history],
        } | ({"gold_fallback": self.gold_fallback} if self.gold_fallback else {})


def _record(t: int, labels: np.ndarray, prev: np.ndarray, judge: np.ndarray, gold: GoldSet, priors: Priors,
            **kw: Any) -> IterationRecord:
    acc = gold.accuracy(labels)
    gain, se = gold.gain(labels, judge)
    return IterationRecord(
        iteration=t,
        priors=priors.as_dict(),
        delta=priors.delta,
        n_harmful=int(labels.sum()),
        flipped=int((labels != prev).sum()),
        gold_accuracy=asdict(acc),
        gain_vs_judge={"value": gain, "se": se},
        **kw,
    )


def select_iteration(history: list[IterationRecord], margin_se: float = 0.0) -> int:
    """The ``gold`` rule: best gold accuracy among iterations that beat the judge by > margin_se SE."""
    eligible = [r for r in history[1:] if r.gain_vs_judge["value"] > margin_se * r.gain_vs_judge["se"]]
    if not eligible:
        return 0
    return max(eligible, key=lambda r: (r.gold_accuracy["value"], -r.iteration)).iteration


def _split_val(pool: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(pool)
    n_val = max(2, int(round(fraction * len(pool))))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _by_label(rows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return rows[labels[rows] == 1], rows[labels[rows] == 0]


MIN_TRAIN_ROWS = 20


def refine(
    texts: list[str],
    judge_labels: np.ndarray,
    gold: GoldSet,
    backbone: Backbone,
    loss: str = "robust_uu",
    lam: float = -0.001,
    iterations: int = 5,
    val_fraction: float = 0.1,
    flip_tol: float = 0.005,
    select: str = "gold",
    margin_se: float = 0.0,
    seed: int = 0,
    judge_scores: np.ndarray | None = None,
    holdout: np.ndarray | None = None,
    exclude_gold: bool = True,
    combine: str = "judge",
    fallback: str = "gold",
) -> RefineResult:
    """Refine judge labels with iterative (robust) UU learning.

    Args:
        texts: the classifier text of every row.
        judge_labels: 0/1 judge labels (1 = harmful) of every row.
        gold: the gold rows (:class:`GoldSet`), used for priors and selection only.
        backbone: the classifier family (:mod:`rlaif_uu.refine.backbones`).
        loss: ``robust_uu`` (default), ``uu`` or ``pn``.
        lam: λ of the robust correction f_λ.
        iterations: K, the maximum number of refinement rounds.
        val_fraction: share of the training pool held out to pick the best epoch.
        flip_tol: stop when fewer than this share of labels flip in a round.
        select: ``gold`` or ``last`` (see the module docstring).
        margin_se: standard errors of gain over the judge an iteration needs to be eligible.
        seed: seeds the split, the initialisations and the batch order.
        judge_scores: optional judge log-odds, returned as scores if iteration 0 wins.
        holdout: rows never trained on (still relabelled), e.g. a benchmark's test split.
        exclude_gold: keep gold rows out of training so gold accuracy is out-of-sample
            (only an oracle benchmark whose gold covers the training rows turns it off).
        combine: ``judge`` relabels by the classifier stacked with the judge's score (or
            label) on the gold rows (:mod:`.stack`); ``none`` by the classifier alone.
        fallback: ``gold`` or ``judge``: what replaces the judge's labels when they would be
            returned (see the module docstring).

    Raises:
        UserError: one pseudo class is empty, or θp − θn is too small at iteration 0 (and, with
            ``fallback="gold"``, the gold-only classifier does not beat the judge either).
    """
    if iterations < 1:
        raise UserError(f"iterations = {iterations}; refinement needs at least 1")
    check_choice("select", select, SELECT_RULES)
    check_choice("combine", combine, COMBINE)
    check_choice("fallback", fallback, FALLBACKS)
    labels0 = np.asarray(judge_labels, dtype=int)
    if labels0.min() == labels0.max():
        name = "harmful" if labels0[0] == 1 else "safe"
        raise UserError(f"all {len(labels0)} judge labels are '{name}': UU learning needs rows in both pseudo sets")
    priors = gold.priors(labels0)
    try:
        check_priors(priors, "iteration 0 (judge labels)")
    except UserError as exc:
        if fallback != "gold" or not weak_signal(priors):
            raise
        backbone.prepare(texts)
        history = [_record(0, labels0, labels0, labels0, gold, priors, note="judge labels")]
        rescued = _gold_fallback(backbone, gold, labels0, history, f"θp − θn = {priors.delta:.3f} < {MIN_DELTA}: no refinement ran",
                                 margin_se, seed)
        if rescued is None:
            raise UserError(f"{exc}; a classifier trained on the {len(gold)} gold rows alone does not beat the judge on them "
                            "either") from None
        return rescued
    rng = np.random.default_rng(seed)
    pool = np.setdiff1d(np.arange(len(texts)), holdout if holdout is not None else [])
    if exclude_gold:
        pool = np.setdiff1d(pool, gold.index)
    if len(pool) < MIN_TRAIN_ROWS:
        raise UserError(
            f"only {len(pool)} rows are left to train on once the {len(gold.index)} gold rows are set aside (gold rows "
            f"never train: they measure every iteration out of sample); refinement needs at least {MIN_TRAIN_ROWS}: "
            "judge more rows, or label a smaller gold sample"
        )
    train_rows, val_rows = _split_val(pool, val_fraction, rng)
    all_rows = np.arange(len(texts))

    backbone.prepare(texts)
    history = [_record(0, labels0, labels0, labels0, gold, priors, note="judge labels")]
    label_sets = {0: labels0}
    scores: dict[int, np.ndarray] = {}
    classifier_scores: dict[int, np.ndarray] = {}
    judge_evidence = labels0 if judge_scores is None else np.asarray(judge_scores, dtype=float)
    current, stop = labels0, f"reached {iterations} iterations"
    first_model: tuple[int, torch.nn.Module] | None = None  # iteration 1: trained on the judge's labels
    rule_model: tuple[int, torch.nn.Module] | None = None  # the iteration the rule picks so far
    for t in tqdm(range(1, iterations + 1), desc="refine", unit="iter"):
        t0 = time.perf_counter()
        risk, val_risk = make_risk(loss, priors, lam)
        model = backbone.new_model(seed + t)
        res = fit(backbone, model, _by_label(train_rows, current), _by_label(val_rows, current), risk, val_risk, seed + t, desc=f"iter {t}")
        g = predict(backbone, res.model, all_rows, desc=f"relabel {t}")
        s, weights = stack_with_judge(g, judge_evidence, gold) if combine == "judge" else (g, {})
        new = (s > 0).astype(int)
        new_priors = gold.priors(new)
        rec = _record(t, new, current, labels0, gold, new_priors, val_loss=res.best_val_loss, best_epoch=res.best_epoch,
                      stacking=weights, seconds=time.perf_counter() - t0)
        history.append(rec)
        label_sets[t], scores[t], classifier_scores[t] = new, s, g
        if first_model is None:
            first_model = (t, res.model)
        if select_iteration(history, margin_se) == t:
            rule_model = (t, res.model)
        if new.min() == new.max():
            stop = rec.note = f"iteration {t} put every row in one class; stopped"
            break
        if new_priors.delta < MIN_DELTA or np.isnan(new_priors.delta):
            stop = rec.note = f"θp − θn = {new_priors.delta:.3f} after iteration {t} is too small to continue; stopped"
            break
        current, priors = new, new_priors
        if rec.flipped / len(texts) < flip_tol:
            stop = rec.note = f"{rec.flipped} labels flipped (< {flip_tol:.1%}); converged"
            break

    if select == "last":
        chosen, (model_it, model) = history[-1].iteration, (history[-1].iteration, res.model)
    else:
        chosen = select_iteration(history, margin_se)
        # When the judge (iteration 0) wins, the classifier is the one trained on the judge's labels: a later
        # iteration's classifier was trained on labels the rule rejected, and once theta_p - theta_n has
        # collapsed its scores are nearly flat, which GRPO's normalised advantages turn into noise.
        model_it, model = rule_model if chosen > 0 and rule_model else first_model  # type: ignore[misc]
    if chosen == 0 and fallback == "gold":
        rescued = _gold_fallback(backbone, gold, labels0, history, f"no iteration beat the judge ({stop})", margin_se, seed,
                                 all_scores=scores, classifier_scores=classifier_scores)
        if rescued is not None:
            return rescued
    return RefineResult(
        labels=label_sets[chosen],
        scores=scores.get(chosen, judge_scores),
        selected=chosen,
        history=history,
        stop_reason=stop,
        model=model,
        model_iteration=model_it,
        all_scores=scores,
        classifier_scores=classifier_scores,
    )


def _gold_fallback(backbone: Backbone, gold: GoldSet, judge: np.ndarray, history: list[IterationRecord], reason: str,
                   margin_se: float, seed: int, **scores: Any) -> RefineResult | None:
    """The gold-only classifier's result when it beats the judge on the gold rows by > margin_se SE, else None."""
    fb = gold_classifier(backbone, gold, judge, seed + 997)
    if fb is None or fb.gain <= margin_se * fb.se:
        return None
    info = {"reason": reason, "gold_accuracy": fb.accuracy, "judge_gold_accuracy": fb.judge_accuracy,
            "gain_vs_judge": {"value": fb.gain, "se": fb.se}, "n_gold": len(gold)}
    return RefineResult(labels=fb.labels, scores=fb.scores, selected=0, history=history,
                        stop_reason=f"{reason}; labels from a classifier trained on the gold rows alone", model=fb.model,
                        gold_fallback=info, **scores)
