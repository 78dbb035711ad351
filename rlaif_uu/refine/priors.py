"""Class priors θp, θn, π from a few gold labels, with confidence intervals.

The gold sample is drawn *inside* the judge's pseudo sets (``sample_gold``:
half from P̃, half from Ñ), so each gold row stands for N_s / n_s corpus rows of
its stratum s (its judge label). All estimates are weighted by these
inverse-inclusion weights, which makes them consistent for the corpus whatever
the allocation (a plain class-stratified sample, as in the reference code,
biases precision-type rates whenever π ≠ 0.5). At every iteration the same gold
rows are re-grouped by the *current* labels:

    θp = Σ_{i∈G, ỹ_i=1} w_i y_i / Σ_{i∈G, ỹ_i=1} w_i      (ratio estimator)
    θn = Σ_{i∈G, ỹ_i=0} w_i y_i / Σ_{i∈G, ỹ_i=0} w_i
    π  = Σ_{i∈G} w_i y_i / Σ_{i∈G} w_i

Intervals are Wilson 95% intervals at the Kish effective sample size
n_eff = (Σw)² / Σw².
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import numpy as np

from rlaif_uu.data.io import Row, read_records
from rlaif_uu.errors import UserError

log = logging.getLogger(__name__)

MIN_DELTA = 0.05  # θp − θn below this: the UU coefficients (divided by Δ) blow up

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    """A proportion with its 95% interval and the effective number of gold rows behind it."""

    value: float
    low: float
    high: float
    n_eff: float


@dataclass(frozen=True)
class Priors:
    """θp, θn and π for one labelling of the corpus."""

    theta_p: Estimate
    theta_n: Estimate
    pi: Estimate

    @property
    def delta(self) -> float:
        """Δ = θp − θn, the signal the judge carries."""
        return self.theta_p.value - self.theta_n.value

    def as_dict(self) -> dict[str, dict[str, float]]:
        """Plain-dict form for history.json."""
        return {"theta_p": asdict(self.theta_p), "theta_n": asdict(self.theta_n), "pi": asdict(self.pi)}

    def describe(self) -> str:
        """One-line summary with intervals."""

        def fmt(name: str, e: Estimate) -> str:
            return f"{name}={e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"

        return ", ".join([fmt("θp", self.theta_p), fmt("θn", self.theta_n), fmt("π", self.pi)]) + f", Δ={self.delta:.3f}"


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion p observed on n (effective) trials."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def weighted_proportion(y: np.ndarray, w: np.ndarray) -> Estimate:
    """Weighted mean of 0/1 outcomes with a Wilson interval at the Kish effective n."""
    if len(y) == 0 or w.sum() <= 0:
        return Estimate(float("nan"), 0.0, 1.0, 0.0)
    p = float(np.dot(w, y) / w.sum())
    n_eff = float(w.sum() ** 2 / np.dot(w, w))
    low, high = wilson(p, n_eff)
    return Estimate(p, low, high, n_eff)


@dataclass(frozen=True)
class GoldSet:
    """Gold rows of the corpus: their positions, labels and inclusion weights.

    Build it with :meth:`from_strata` (weights from the judge labels the sample
    was stratified on) or :meth:`oracle` (every row, weight 1; benchmarks only).
    """

    index: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    @classmethod
    def from_strata(cls, index: np.ndarray, labels: np.ndarray, strata: np.ndarray) -> GoldSet:
        """Weights w_i = N_s / n_s with s the judge label of gold row i.

        Args:
            index: positions of the gold rows in the corpus.
            labels: their gold labels (1 = harmful).
            strata: the judge label of *every* corpus row (the sampling strata).
        """
        index = np.asarray(index, dtype=int)
        labels = np.asarray(labels, dtype=int)
        strata = np.asarray(strata, dtype=int)
        weights = np.zeros(len(index), dtype=float)
        for s in (0, 1):
            in_gold = strata[index] == s
            if in_gold.any():
                weights[in_gold] = (strata == s).sum() / in_gold.sum()
        return cls(index, labels, weights)

    @classmethod
    def oracle(cls, labels: np.ndarray) -> GoldSet:
        """Every corpus row is gold (benchmark upper bound for the priors)."""
        labels = np.asarray(labels, dtype=int)
        return cls(np.arange(len(labels)), labels, np.ones(len(labels)))

    def __len__(self) -> int:
        return len(self.index)

    def priors(self, current: np.ndarray) -> Priors:
        """Estimate θp, θn, π for the corpus labelled ``current`` (0/1 per row)."""
        pseudo = np.asarray(current, dtype=int)[self.index]
        pos, neg = pseudo == 1, pseudo == 0
        return Priors(
            theta_p=weighted_proportion(self.labels[pos], self.weights[pos]),
            theta_n=weighted_proportion(self.labels[neg], self.weights[neg]),
            pi=weighted_proportion(self.labels, self.weights),
        )

    def gain(self, predicted: np.ndarray, baseline: np.ndarray) -> tuple[float, float]:
        """Paired weighted accuracy gain of ``predicted`` over ``baseline`` on the gold rows, and its SE.

        D = Σ w_i (a_i − b_i) / Σ w_i with a_i, b_i the per-row hits; SE² = Σ w_i² (d_i − D)² / (Σ w_i)².
        """
        y = self.labels
        d = (np.asarray(predicted)[self.index] == y).astype(float) - (np.asarray(baseline)[self.index] == y).astype(float)
        w = self.weights
        mean = float(np.dot(w, d) / w.sum())
        return mean, float(np.sqrt(np.dot(w * w, (d - mean) ** 2)) / w.sum())

    def accuracy(self, predicted: np.ndarray) -> Estimate:
        """Weighted accuracy of corpus-wide predictions on the gold rows (an unbiased corpus estimate)."""
        hit = (np.asarray(predicted, dtype=int)[self.index] == self.labels).astype(float)
        return weighted_proportion(hit, self.weights)


def clearly_flipped(priors: Priors) -> bool:
    """θp clearly below θn: Δ ≤ −MIN_DELTA with disjoint intervals (not noise around 0)."""
    return priors.delta <= -MIN_DELTA and priors.theta_p.high < priors.theta_n.low


def weak_signal(priors: Priors) -> bool:
    """Both rates estimated, Δ below MIN_DELTA, and not clearly flipped: the judge is merely uninformative."""
    return not math.isnan(priors.delta) and priors.delta < MIN_DELTA and not clearly_flipped(priors)


def check_priors(priors: Priors, context: str) -> None:
    """Raise a :class:`UserError` that shows the estimates when UU cannot learn from them."""
    if math.isnan(priors.theta_p.value) or math.isnan(priors.theta_n.value):
        side = "pseudo-harmful" if math.isnan(priors.theta_p.value) else "pseudo-safe"
        raise UserError(
            f"{context}: no gold row falls in the {side} set, so its harmful rate cannot be estimated; "
            f"label gold rows from both sets (rlaif-uu refine sample-gold)"
        )
    if clearly_flipped(priors):
        raise UserError(
            f"{context}: θp − θn = {priors.delta:.3f} ({priors.describe()}): the judge is anti-correlated with the gold "
            "labels (its 'harmful' set holds fewer harmful rows than its 'safe' set), so its polarity is probably flipped: "
            "swapped verdict words in the template, a score where higher means safer, or gold labels written the other "
            "way round; flip judge_label (harmful <-> safe) or fix the judge and relabel, or check the gold labels"
        )
    if priors.delta < MIN_DELTA:
        raise UserError(
            f"{context}: θp − θn = {priors.delta:.3f} < {MIN_DELTA} ({priors.describe()}): the judge's "
            "'harmful' and 'safe' sets hold almost the same share of harmful rows, so the labels carry too "
            "little signal to refine; use a better judge or template, or check the gold labels"
        )


def sample_gold(judge_labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Positions of n rows to label by hand: half from P̃, half from Ñ (the rest from the bigger set).

    Raises:
        UserError: when n exceeds the corpus or a pseudo set is empty.
    """
    judge_labels = np.asarray(judge_labels, dtype=int)
    if n > len(judge_labels):
        raise UserError(f"--n {n} is larger than the corpus ({len(judge_labels)} rows)")
    pools = [np.flatnonzero(judge_labels == s) for s in (1, 0)]
    if any(len(p) == 0 for p in pools):
        raise UserError("every judge label is in one class; the judge gives no pseudo-harmful/pseudo-safe split to sample from")
    rng = np.random.default_rng(seed)
    take_pos = min(len(pools[0]), max(n - len(pools[1]), n // 2 + n % 2))
    take = [take_pos, n - take_pos]
    chosen = [rng.choice(pool, size=k, replace=False) for pool, k in zip(pools, take)]
    return np.sort(np.concatenate(chosen))


MIN_GOLD = 10


def load_gold(rows: list[Row], gold_path: str | None) -> GoldSet:
    """Gold rows from a gold file (``id`` + ``gold_label``) or the input's ``gold_label`` column.

    Raises:
        UserError: unlabelled rows, fewer than 10 rows, one class only, or ids not in the input.
    """
    position = {r["id"]: i for i, r in enumerate(rows)}
    if gold_path:
        source = str(gold_path)
        gold_rows = read_records(gold_path, required=("gold_label",))
        missing = [g["id"] for g in gold_rows if g["id"] not in position]
        if missing:
            raise UserError(
                f"{source}: {len(missing)} gold id(s) not found in the input, e.g. {missing[0]!r}; "
                "gold rows must carry the ids of input rows (rlaif-uu refine sample-gold writes them)"
            )
        changed = [g["id"] for g in gold_rows if any(k in g and g[k] != rows[position[g["id"]]][k] for k in ("prompt", "response"))]
        if changed:
            log.warning("%s: %d gold row(s) carry a prompt or response that differs from the input row with the same id, "
                        "e.g. %r; their labels were given to other text (regenerated rows?)", source, len(changed), changed[0])
        pairs = [(position[g["id"]], g["gold_label"]) for g in gold_rows]
    else:
        source = "input column 'gold_label'"
        pairs = [(i, r["gold_label"]) for i, r in enumerate(rows) if r.get("gold_label") is not None]
        if not pairs:
            raise UserError("no gold labels: pass --gold FILE (draw rows to label with `rlaif-uu refine sample-gold`)")
    if len(pairs) < MIN_GOLD:
        raise UserError(f"{source}: only {len(pairs)} gold rows; refinement needs at least {MIN_GOLD} (50 is the target)")
    index = np.array([p[0] for p in pairs])
    labels = np.array([p[1] for p in pairs])
    if len(set(labels.tolist())) < 2:
        only = "harmful" if labels[0] == 1 else "safe"
        raise UserError(f"{source}: every gold label is '{only}'; the gold rows must include both classes")
    judge = np.array([r["judge_label"] for r in rows])
    return GoldSet.from_strata(index, labels, judge)
