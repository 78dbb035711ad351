"""Where should the 50 gold labels go? Robust UU with five gold allocations on the corpora of bench_corpora.py (issue 18).

Rerun (writes eval/results/gold_allocation.{json,md,png}; frozen MiniLM embeddings, cached on disk):

    PYTHONPATH=. OMP_NUM_THREADS=1 TQDM_DISABLE=1 nice -n 10 .venv/bin/python eval/bench_gold_allocation.py --seeds 6 --threads 1

Allocations of the same budget, drawn from each seed's training split (bench_corpora.py's 80/20 split; the test
rows are never labelled or trained on):

* ``stratified``: half in the judge's pseudo-harmful set, half in its pseudo-safe set, at random
  (``rlaif-uu refine sample-gold``, ``annotator.strategy: stratified``; every earlier refinement benchmark);
* ``random``: uniform over the training rows (``annotator.strategy: random``);
* ``active``: the LAUD query score's top rows (``annotator.strategy: mixed``, the rounds pipeline's default): a
  probe trained on the judge's labels of the training rows ranks them by its uncertainty plus its disagreement with
  the judge;
* ``split``: half stratified at random, half by the query score among the remaining rows;
* ``weighted``: drawn at random with probability q_i = ½/N + ½·s_i/Σs (half uniform, half the query score s), and
  weighted 1 / (n q_i) (Horvitz-Thompson), so the priors stay unbiased while the draw leans to informative rows.

Every allocation but ``weighted`` goes to robust UU as the library does (``GoldSet.from_strata``: weights N_s / n_s
by the judge's label, which is unbiased for the random and stratified allocations only), library defaults otherwise (gold
fall-back on). Reported per (corpus, noise): robust UU's test accuracy minus the raw judge's, mean over seeds, SE,
95% t interval, and each allocation minus ``stratified`` paired by seed; ``heldout`` apart (never used to choose).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import corpora as C
from bench_corpora import grid_main, paired, write_grid_report
from bench_refine import gold_set, metrics, split_and_gold

from rlaif_uu.errors import UserError
from rlaif_uu.refine.active import QueryWeights, query_scores, select, train_with_answers
from rlaif_uu.refine.loop import refine
from rlaif_uu.refine.priors import GoldSet

HERE = Path(__file__).parent
ALLOCATIONS = ("stratified", "random", "active", "split", "weighted")
BASE = "stratified"


def allocate(kind: str, y: np.ndarray, noisy: np.ndarray, train: np.ndarray, query: np.ndarray, n: int,
             seed: int) -> GoldSet:
    """The ``n`` gold rows of allocation ``kind`` among the training rows ``train``, weighted as robust UU will use them.

    ``weighted`` draws with q_i = ½/N + ½·s_i/Σs and weighs 1 / (n q_i); the others carry the strata weights.
    """
    if kind == "weighted":
        s = query[train]
        q = 0.5 / len(train) + 0.5 * s / s.sum()
        pick = np.sort(np.random.default_rng(seed).choice(len(train), size=n, replace=False, p=q))
        return GoldSet(train[pick], y[train[pick]], 1.0 / np.minimum(1.0, n * q[pick]))
    if kind == "split":
        half = select(query, train, n // 2, "stratified", seed, noisy)
        g_idx = np.sort(np.concatenate([half, select(query, np.setdiff1d(train, half), n - n // 2, "mixed", seed)]))
    else:
        g_idx = select(query, train, n, "mixed" if kind == "active" else kind, seed, noisy)
    return gold_set(g_idx, y, train, noisy)


def run_cell(texts: list[str], y: np.ndarray, emb: np.ndarray, backbone: Any, noisy: np.ndarray, scores: np.ndarray | None,
             seed: int, n_gold: int) -> dict[str, Any]:
    """Raw judge and robust UU under every allocation on one (corpus, noise, seed); ``emb`` is unused."""
    test, train, _ = split_and_gold(y, noisy, seed, n_gold)
    out: dict[str, Any] = {"raw judge": metrics(y[test], noisy[test], None if scores is None else scores[test])}
    logits, _ = train_with_answers(backbone, texts, noisy, train, {}, 1, seed)  # LAUD's cold start: the judge's labels
    query = query_scores(logits, noisy, None, QueryWeights())
    for kind in ALLOCATIONS:
        gold = allocate(kind, y, noisy, train, query, n_gold, seed)
        t0 = time.perf_counter()
        entry = {"gold_harmful": int(gold.labels.sum()), "gold_judge_wrong": int((gold.labels != noisy[gold.index]).sum())}
        try:
            res = refine(texts, noisy, gold, backbone, iterations=5, judge_scores=scores,
                         holdout=test, seed=seed)
            kept = res.selected == 0 and res.gold_fallback is None
            m = out["raw judge"] if kept else metrics(y[test], (res.scores[test] > 0).astype(int), res.scores[test])
            entry |= m | {"selected": res.selected, "fell_back": kept, "refused": ""}
        except UserError as exc:  # the tool refuses this gold sample (e.g. delta too small): the judge's labels stand
            entry |= out["raw judge"] | {"selected": 0, "fell_back": True, "refused": str(exc)[:160]}
        out[kind] = entry | {"seconds": time.perf_counter() - t0}
    return out


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    s: dict[str, Any] = {"seeds": len(per_seed), "raw_acc": float(np.mean([r["raw judge"]["acc"] for r in per_seed]))}
    for k in ALLOCATIONS:
        s[k] = {"acc": float(np.mean([r[k]["acc"] for r in per_seed])), "vs_raw": paired(per_seed, k, "raw judge"),
                "fell_back": int(sum(r[k]["fell_back"] for r in per_seed)),
                "gold_judge_wrong": float(np.mean([r[k]["gold_judge_wrong"] for r in per_seed])),
                "gold_harmful": float(np.mean([r[k]["gold_harmful"] for r in per_seed]))}
        if k != BASE:
            s[k]["vs_" + BASE] = paired(per_seed, k, BASE)
    return s


def overall(cells: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Mean gain over raw per allocation across the cells of ``names`` (each cell weighs the same), per noise and in all."""
    out: dict[str, Any] = {}
    for noise in (*C.NOISES, "all"):
        keys = [f"{c}/{n}" for c in names for n in C.NOISES if (noise in ("all", n)) and "summary" in cells.get(f"{c}/{n}", {})]
        if keys:
            out[noise] = {k: {"mean_gain": float(np.mean([cells[c]["summary"][k]["vs_raw"]["gain"] for c in keys])),
                              "cells_won_vs_" + BASE: sum(cells[c]["summary"][k].get("vs_" + BASE, {}).get("gain", 0) > 0 for c in keys),
                              "fell_back": sum(cells[c]["summary"][k]["fell_back"] for c in keys),
                              "cells": len(keys)} for k in ALLOCATIONS}
    return out


def pct(x: float) -> str:
    return f"{100 * x:+.1f}"


def overall_lines(o: dict[str, Any]) -> list[str]:
    lines = ["| noise | cells | " + " | ".join(f"{k}: mean gain (cells beating stratified, fall-backs)" for k in ALLOCATIONS) + " |",
             "|---|---|" + "---|" * len(ALLOCATIONS)]
    for noise, v in o.items():
        cells = [f"{pct(v[k]['mean_gain'])} ({v[k]['cells_won_vs_' + BASE] if k != BASE else '–'}, {v[k]['fell_back']})" for k in ALLOCATIONS]
        lines.append(f"| {noise} | {v[BASE]['cells']} | " + " | ".join(cells) + " |")
    return lines


def cell_lines(s: dict[str, Any]) -> list[str]:
    lines = ["| allocation | test acc | gain vs raw (points) | SE | 95% interval | vs stratified (paired) | fell back | gold rows the judge got wrong | harmful gold rows |",
             "|---|---|---|---|---|---|---|---|---|", f"| raw judge | {s['raw_acc']:.3f} | – | – | – | – | – | – | – |"]
    for k in ALLOCATIONS:
        v, p = s[k], s[k]["vs_raw"]
        b = s[k].get("vs_" + BASE)
        vs = f"{pct(b['gain'])} [{pct(b['lo'])}, {pct(b['hi'])}]" if b else "–"
        lines.append(f"| {k} | {v['acc']:.3f} | {pct(p['gain'])} | {100 * p['se']:.1f} | [{pct(p['lo'])}, {pct(p['hi'])}] | {vs} | "
                     f"{v['fell_back']}/{s['seeds']} | {v['gold_judge_wrong']:.1f} | {v['gold_harmful']:.1f} |")
    return lines


def plot(res: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    o = res["overall"]["tuning"]
    noises = [n for n in (*C.NOISES, "all") if n in o]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    w = 0.8 / len(ALLOCATIONS)
    for i, k in enumerate(ALLOCATIONS):
        ax.bar(np.arange(len(noises)) + i * w, [100 * o[n][k]["mean_gain"] for n in noises], w, label=k)
    ax.set_xticks(np.arange(len(noises)) + 0.4 - w / 2, noises)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("robust UU − raw judge (points)")
    ax.set_title("50 gold labels, five allocations (tuning corpora, mean over cells)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


def finish(res: dict[str, Any], out: Path) -> None:
    write_grid_report(res, out, "Gold allocation: where the 50 labels go (issue 18)",
                      ("Protocol: docstring of eval/bench_gold_allocation.py; corpora and noise models: eval/corpora.py "
                       "(as eval/results/refine_corpora.md). Gains are robust UU's test accuracy minus the raw judge's, in points."),
                      summarise, overall, overall_lines, cell_lines)
    if res["overall"]["tuning"]:
        plot(res, out)


def main() -> None:
    grid_main(__doc__, 6, HERE / "results" / "gold_allocation", run_cell, finish,
              lambda r: f"raw {r['raw judge']['acc']:.3f}, "
              + ", ".join(f"{k} {r[k]['acc']:.3f}{' (fb)' if r[k]['fell_back'] else ''}" for k in ALLOCATIONS))


if __name__ == "__main__":
    main()
