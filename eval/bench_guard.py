"""How strict should the gold guard be? Neighbourhood and confident learning on the corpora of bench_corpora.py (issue 18).

Rerun (writes eval/results/gold_guard.{json,md}; frozen MiniLM embeddings, cached on disk):

    PYTHONPATH=. OMP_NUM_THREADS=1 TQDM_DISABLE=1 nice -n 10 .venv/bin/python eval/bench_guard.py --seeds 10 --threads 1

Same split, gold rows and refiners as eval/bench_corpora.py (library defaults, trained on the training split minus
the 50 gold rows). The guard (``rlaif_uu.refine.methods.gold_guard``) keeps a refiner's labels only when their paired
weighted gain D over the judge on the gold rows exceeds m x SE; otherwise the judge's labels stand (gain exactly 0 on
that seed). One run records D, SE and the unguarded test accuracy per seed, so every margin m is scored on the same
refiner outputs. Reported per margin: the mean test gain over the raw judge per cell, the cells more than one SE
(over seeds) below raw (target 3 of the issue), and the fall-backs; ``heldout`` apart (never used to choose).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_corpora import grid_main, guardable_refiners, write_grid_report
from bench_refine import gold_set, metrics, split_and_gold

from rlaif_uu.refine.methods import guard_keeps

HERE = Path(__file__).parent
MARGINS = (0.0, 0.5, 1.0, 1.5, 2.0)
METHODS = ("neighbourhood", "confident")


def run_cell(texts: list[str], y: np.ndarray, emb: np.ndarray, backbone: Any, noisy: np.ndarray, scores: np.ndarray | None,
             seed: int, n_gold: int) -> dict[str, Any]:
    """Raw judge and both refiners (unguarded) on one (corpus, noise, seed), with the guard's D and SE."""
    test, train, g_idx = split_and_gold(y, noisy, seed, n_gold)
    gold = gold_set(g_idx, y, train, noisy)
    pool = np.setdiff1d(train, g_idx)
    out: dict[str, Any] = {"raw judge": metrics(y[test], noisy[test], None if scores is None else scores[test])}
    for _, short, result, _ in guardable_refiners(texts, noisy, backbone, emb, pool, seed):
        gain, se = gold.gain(result.labels, noisy)
        out[short] = metrics(y[test], result.labels[test], result.scores[test]) | {"gold_gain": gain, "gold_se": se}
    return out


def _mean_se(d: np.ndarray) -> dict[str, float]:
    return {"gain": float(d.mean()), "se": float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Per method: the unguarded gain over the raw judge and, per margin, the guarded one (0 on a seed the guard
    falls back on) with the fall-back count; mean and SE over seeds."""
    s: dict[str, Any] = {"seeds": len(per_seed)}
    for m in METHODS:
        d = np.array([r[m]["acc"] - r["raw judge"]["acc"] for r in per_seed])
        for margin in MARGINS:
            keep = np.array([guard_keeps(r[m]["gold_gain"], r[m]["gold_se"], margin) for r in per_seed])
            s[f"{m}@{margin:g}"] = _mean_se(d * keep) | {"fell_back": int((~keep).sum())}
        s[f"{m} (unguarded)"] = _mean_se(d)
    return s


def overall(cells: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Per method and margin across the cells of ``names``: mean gain, worst cell, cells more than 1 SE below raw."""
    keys = [k for k in cells if k.split("/")[0] in names and "summary" in cells[k]]
    out: dict[str, Any] = {}
    for m in METHODS:
        for margin in MARGINS:
            v = {k: cells[k]["summary"][f"{m}@{margin:g}"] for k in keys}
            out[f"{m}@{margin:g}"] = {"mean_gain": float(np.mean([x["gain"] for x in v.values()])) if v else float("nan"),
                                      "below_1se": [k for k, x in v.items() if x["gain"] < -x["se"]],
                                      "worst": min(((x["gain"], k) for k, x in v.items()), default=(float("nan"), "-")),
                                      "fell_back": sum(x["fell_back"] for x in v.values()),
                                      "runs": sum(cells[k]["summary"]["seeds"] for k in keys), "cells": len(keys)}
    return out


def overall_lines(o: dict[str, Any]) -> list[str]:
    lines = ["| method | margin (SE) | cells | mean gain vs raw (points) | worst cell | cells > 1 SE below raw | fall-backs |",
             "|---|---|---|---|---|---|---|"]
    for key, v in o.items():
        m, margin = key.split("@")
        worst = f"{100 * v['worst'][0]:+.1f} ({v['worst'][1]})"
        lines.append(f"| {m} | {margin} | {v['cells']} | {100 * v['mean_gain']:+.1f} | {worst} | "
                     f"{len(v['below_1se'])}{': ' + ', '.join(v['below_1se']) if v['below_1se'] else ''} | {v['fell_back']}/{v['runs']} |")
    return lines


def cell_lines(s: dict[str, Any]) -> list[str]:
    head = [f"{m} (unguarded)" for m in METHODS] + [f"{m}@{g:g}" for m in METHODS for g in MARGINS]
    lines = ["| " + " | ".join(["seeds", *head]) + " |", "|---|" + "---|" * len(head)]
    cells = [f"{100 * s[h]['gain']:+.1f} ± {100 * s[h]['se']:.1f}" + (f" ({s[h]['fell_back']} fb)" if "fell_back" in s[h] else "")
             for h in head]
    return [*lines, "| " + " | ".join([str(s["seeds"]), *cells]) + " |"]


def finish(res: dict[str, Any], out: Path) -> None:
    write_grid_report(res, out, "Gold guard margin: neighbourhood and confident learning (issue 18)",
                      ("Protocol: docstring of eval/bench_guard.py; corpora and noise models: eval/corpora.py (as "
                       "eval/results/refine_corpora.md). Gains: guarded test accuracy minus the raw judge's, points, mean ± SE over seeds."),
                      summarise, overall, overall_lines, cell_lines, cell_heading="###", before_cells=("## Per cell", ""))


def main() -> None:
    grid_main(__doc__, 10, HERE / "results" / "gold_guard", run_cell, finish,
              lambda r: f"raw {r['raw judge']['acc']:.3f}, " + ", ".join(
                  f"{m} {r[m]['acc']:.3f} (D {r[m]['gold_gain']:+.3f} ± {r[m]['gold_se']:.3f})" for m in METHODS))


if __name__ == "__main__":
    main()
