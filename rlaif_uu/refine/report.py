"""history.png: priors, label flips and gold accuracy per refinement iteration."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from rlaif_uu.data.io import atomic_path


def _series(its: list[dict[str, Any]], get: Any) -> tuple[list[float], list[list[float]]]:
    values = [get(r)["value"] for r in its]
    err = [[max(0.0, v - get(r)["low"]) for v, r in zip(values, its)], [max(0.0, get(r)["high"] - v) for v, r in zip(values, its)]]
    return values, err


def plot_history(history: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Three panels: θp/θn/π with 95% CIs, labels flipped, weighted gold accuracy with CI.

    The selected iteration is marked with a dashed line in every panel.
    """
    its = history["iterations"]
    xs = [r["iteration"] for r in its]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, label in (("theta_p", "θp = P(harmful | pseudo-harmful)"), ("theta_n", "θn = P(harmful | pseudo-safe)"), ("pi", "π")):
        values, err = _series(its, lambda r, k=key: r["priors"][k])
        axes[0].errorbar(xs, values, yerr=err, marker="o", capsize=3, label=label)
    axes[0].set(title="Priors from gold labels (95% CI)", xlabel="iteration", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    axes[1].bar(xs, [r["flipped"] for r in its], color="tab:gray")
    axes[1].set(title="Labels flipped vs previous iteration", xlabel="iteration")
    values, err = _series(its, lambda r: r["gold_accuracy"])
    axes[2].errorbar(xs, values, yerr=err, marker="o", capsize=3, color="tab:green")
    axes[2].set(title="Gold accuracy (held out from training, 95% CI)", xlabel="iteration")
    for ax in axes:
        ax.axvline(history["selected_iteration"], ls="--", color="k", lw=0.8)
        ax.set_xticks(xs)
    fig.suptitle(f"selected iteration {history['selected_iteration']} (0 = judge labels); {history['stop_reason']}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
