"""What the judge's noisy labels plus 50 gold labels are worth, in clean labels.

For every seed (the splits of eval/bench_refine.py) the frozen probe is trained on n
*clean* labels drawn at random from the training split, for a range of n, and robust UU
(defaults: 50 gold, 5 iterations, the gold rule) runs on the simulated judge's labels.
The clean-label learning curve is interpolated at robust UU's mean accuracy: the number
of hand labels that buy the same held-out accuracy ("label equivalent").

A rough yardstick for it: the UU risk divides by Δ = θp − θn, so its variance is about
1/Δ² times that of the clean risk, and n_train noisy rows carry about Δ²·n_train clean
labels' worth of information (a heuristic, not a bound).

Rerun (writes eval/results/label_value.{json,md,png}, about 4 minutes on 2 cores):

    .venv/bin/python eval/bench_label_value.py --seeds 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from bench_refine import HERE, corpus_arrays, gold_set, judge_labels, split_and_gold, supervised

from rlaif_uu.data.io import write_json
from rlaif_uu.refine.config import FrozenBackboneConfig, build_backbone
from rlaif_uu.refine.loop import refine

SIZES = (50, 100, 150, 200, 300, 450)


def run_seed(texts: list[str], y: np.ndarray, ids: list[str], backbone: Any, seed: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Clean-label accuracy at every size (and the whole training split) and robust UU's accuracy, on one split."""
    noisy, _ = judge_labels("simulated", y, ids, seed)
    test, train, g_idx = split_and_gold(y, noisy, seed, 50)
    rng = np.random.default_rng(2000 + seed)
    acc = lambda g: float(((g > 0).astype(int) == y[test]).mean())
    curve = {str(n): acc(supervised(backbone, np.sort(rng.choice(train, n, replace=False)), y, test, seed)) for n in sizes}
    curve[str(len(train))] = acc(supervised(backbone, train, y, test, seed))
    res = refine(texts, noisy, gold_set(g_idx, y, train, noisy), backbone, holdout=test, seed=seed,
                 fallback="judge")  # the setting its committed results were measured with (bench_corpora.py compares both)
    return {"curve": curve, "robust_uu": float((res.labels[test] == y[test]).mean()), "raw": float((noisy[test] == y[test]).mean()),
            "delta": res.history[0].delta, "n_train": len(train)}


def label_equivalent(sizes: list[int], means: list[float], target: float) -> float | None:
    """n where the (monotone part of the) mean clean-label curve reaches ``target``, linearly interpolated."""
    for (n0, a0), (n1, a1) in zip(zip(sizes, means), zip(sizes[1:], means[1:])):
        if a0 <= target <= a1 and a1 > a0:
            return n0 + (target - a0) / (a1 - a0) * (n1 - n0)
    return None


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std of the curve, robust UU's mean, its label equivalent and the Δ²·n yardstick."""
    sizes = sorted(int(n) for n in per_seed[0]["curve"])
    acc = {n: [s["curve"][str(n)] for s in per_seed] for n in sizes}
    curve = {n: [float(np.mean(acc[n])), float(np.std(acc[n]))] for n in sizes}
    rob = float(np.mean([s["robust_uu"] for s in per_seed]))
    delta = float(np.mean([s["delta"] for s in per_seed]))
    return {"curve": curve, "robust_uu": [rob, float(np.std([s["robust_uu"] for s in per_seed]))],
            "raw": float(np.mean([s["raw"] for s in per_seed])), "delta": delta, "n_train": per_seed[0]["n_train"],
            "label_equivalent": label_equivalent(sizes, [curve[n][0] for n in sizes], rob),
            "delta2_n": delta**2 * per_seed[0]["n_train"]}


def to_markdown(summary: dict[str, Any], command: str, seeds: int) -> str:
    """The curve table, robust UU's row and its label equivalent."""
    eq = summary["label_equivalent"]
    rows = [f"| {n} clean labels | {m:.3f} ± {s:.3f} |" for n, (m, s) in summary["curve"].items()]
    return "\n".join([
        "# What the judge's noisy labels + 50 gold are worth in clean labels (frozen MiniLM probe)", "",
        f"Command: `{command}`", "",
        (f"Simulated judge (35% harmful→safe, 15% safe→harmful), {seeds} seeds, splits of eval/bench_refine.py; "
         "held-out accuracy (mean ± std over seeds)."), "",
        "| training labels | accuracy |", "|---|---|",
        f"| raw judge labels (no classifier) | {summary['raw']:.3f} |",
        *rows,
        f"| robust UU: {summary['n_train']} noisy + 50 gold | {summary['robust_uu'][0]:.3f} ± {summary['robust_uu'][1]:.3f} |", "",
        "Robust UU matches the clean-label curve at "
        + (f"**{eq:.0f} clean labels**" if eq is not None else "no point of the curve (outside its range)")
        + f"; the Δ²·n yardstick (Δ = θp − θn = {summary['delta']:.2f} estimated from the gold rows at iteration 0) "
        f"gives {summary['delta2_n']:.0f}.", "",
    ])


def plot(summary: dict[str, Any], path: Path) -> None:
    """Clean-label learning curve with robust UU's accuracy and its label equivalent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = list(summary["curve"])
    m = np.array([summary["curve"][n][0] for n in ns])
    s = np.array([summary["curve"][n][1] for n in ns])
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ns, m, "o-", label="frozen probe on n clean labels")
    ax.fill_between(ns, m - s, m + s, alpha=0.2)
    ax.axhline(summary["robust_uu"][0], color="C1", ls="--", label=f"robust UU, {summary['n_train']} noisy + 50 gold")
    ax.axhline(summary["raw"], color="C3", ls=":", label="raw judge")
    if summary["label_equivalent"] is not None:
        ax.axvline(summary["label_equivalent"], color="C1", lw=0.8)
    ax.set_xlabel("clean labels")
    ax.set_ylabel("held-out accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated clean-label counts")
    ap.add_argument("--out", default=str(HERE / "results" / "label_value"))
    args = ap.parse_args()
    backbone = build_backbone(FrozenBackboneConfig())
    texts, y, ids = corpus_arrays()
    backbone.prepare(texts)
    sizes = tuple(int(n) for n in args.sizes.split(","))
    per_seed = []
    for seed in range(args.seeds):
        per_seed.append(run_seed(texts, y, ids, backbone, seed, sizes))
        print(f"[seed {seed}] robust UU {per_seed[-1]['robust_uu']:.3f} curve {per_seed[-1]['curve']}", flush=True)
    summary = summarise(per_seed)
    command = "python " + " ".join(sys.argv)
    out = Path(args.out)
    write_json(out.with_suffix(".json"), {"command": command, "summary": summary, "per_seed": per_seed})
    md = to_markdown(summary, command, args.seeds)
    out.with_suffix(".md").write_text(md)
    plot(summary, out.with_suffix(".png"))
    print(md)


if __name__ == "__main__":
    main()
