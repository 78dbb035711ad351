"""Multi-corpus refinement benchmark (issue 18): every refiner on five corpora x three noise models x seeds.

Rerun (writes eval/results/refine_corpora.{json,md}; frozen MiniLM embeddings, cached on disk):

    PYTHONPATH=. OMP_NUM_THREADS=1 TQDM_DISABLE=1 nice -n 10 .venv/bin/python eval/bench_corpora.py --seeds 10 --threads 1

Corpora and noise models: eval/corpora.py (``heldout`` is held out: chosen by name before any result, reported
apart, never used to choose a setting). The real judge on ``policy`` needs the policy rows' Qwen scores
(eval/data/policy_judges.jsonl, written by ``python eval/corpora.py judge-policy``); without them that cell is skipped
and listed as missing.

Protocol (as eval/bench_refine.py / bench_refiners.py): per seed a stratified 80/20 split, test rows never trained
on, every metric on them. Robust UU gets 50 gold labels drawn inside the judge's pseudo sets of the training split
(``split_and_gold``) and runs with the library defaults (``refine``: when the judge's labels would stand, a classifier
trained on the gold rows alone replaces them if it beats the judge on those rows, cross-fitted); the row "robust UU,
judge fall-back" runs it with ``fallback="judge"`` (the judge's labels stand; a refusal, e.g. delta too small, keeps them
too). Either counts as a fall-back when the judge's labels are returned. Neighbourhood and confident learning train on the training split minus the gold
rows and are guarded by the 50 gold rows exactly as ``rlaif-uu refine --method neighbourhood|confident`` does
(``rlaif_uu.refine.methods.gold_guard`` with the ``RefineConfig`` defaults); on a fall-back the test labels are the
judge's. Their unguarded results are recorded too. Baselines: the raw judge, a classifier trained on the 50 gold rows
only, and on every training row's gold label (ceiling). Paired statistics: per seed, method accuracy minus raw-judge
accuracy on the same test rows; mean, SE over seeds, 95% t interval.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).parent))
import corpora as C
from bench_refine import gold_set, metrics, split_and_gold, supervised

from rlaif_uu.data.io import write_json
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.refine.classify import RefinerOutput, sentence_embeddings
from rlaif_uu.refine.confident import confident_refine
from rlaif_uu.refine.config import ConfidentConfig, FrozenBackboneConfig, NeighbourhoodConfig, RefineConfig, build_backbone
from rlaif_uu.refine.loop import refine
from rlaif_uu.refine.methods import gold_guard
from rlaif_uu.refine.neighbourhood import neighbourhood_refine

HERE = Path(__file__).parent
RUU, NB, CL = "robust UU (50 gold)", "neighbourhood + gold guard", "confident + gold guard"
RUU_J = "robust UU, judge fall-back"
REFINERS = (RUU, NB, CL)
METHODS = ("raw judge", RUU, RUU_J, NB, CL, "neighbourhood (unguarded)", "confident (unguarded)", "50 gold only", "all gold (ceiling)")
NOTES = [
    ("Notes. (1) Gold on `policy` is a proxy: a harmful prompt (Do-Not-Answer, HarmBench, StrongREJECT) answered without a "
    "refusal (the project's refusal rule) is harmful, everything else safe; SmolLM2's compliant answers are often "
    "incoherent, so some 'harmful' rows carry little harm. (2) Real judge: Qwen2.5-Coder-1.5B with the response-only "
    "template, labels = top (π + 0.1) of its scores on each corpus (the bench_refiners convention, qwen@0.4 at π = 0.31): "
    "an oracle-informed threshold that favours the raw judge; the same labels on every seed (only the split and the "
    "gold sample change). (3) `feature` noise: every refusal flagged unsafe, every harmful row of the blind topic "
    "(ToxiGen hate speech; on `policy`, answers to StrongREJECT prompts) missed, 5% of the rest flipped. On `lowpi` "
    "(290 refusals, 60 harmful rows) this judge's 'harmful' set is almost all refusals, θp < θn: robust UU refuses "
    "(Δ < 0.05) by design, so the refusal counts as a fall-back. (4) `builtin` is the corpus every default was tuned on; "
    "target 1 is shown with and without it. (5) Fall-back of the guarded methods puts the judge's labels back, so their "
    "gain is exactly 0 on that seed; the unguarded rows show what the refiner itself did. (6) The Qwen judge used for "
    "the policy rows reproduces the stored corpus_judges.jsonl scores exactly (4 built-in rows re-judged: 3.952, 6.506, "
    "5.430, 3.825 both times)."),
]
GUARD_MARGIN_SE = next(f.default for f in fields(RefineConfig) if f.name == "guard_margin_se")


def guardable_refiners(texts: list[str], noisy: np.ndarray, backbone: Any, emb: np.ndarray, pool: np.ndarray,
                       seed: int) -> Iterator[tuple[str, str, RefinerOutput, float]]:
    """(row name, method, unguarded result, start time) of neighbourhood and confident learning, library defaults,
    trained on the rows ``pool``."""
    nc, cc = NeighbourhoodConfig(), ConfidentConfig()
    t0 = time.perf_counter()
    yield NB, "neighbourhood", neighbourhood_refine(texts, noisy, backbone, emb, pool, k=nc.k, certain=nc.certain, two=nc.two,
                                                    noisy_threshold=nc.noisy_threshold, checkpoints=nc.checkpoints,
                                                    rounds=nc.rounds, alpha=nc.alpha, distance=nc.distance, seed=seed), t0
    t0 = time.perf_counter()
    yield CL, "confident", confident_refine(texts, noisy, backbone, pool, folds=cc.folds, relabel=cc.relabel, seed=seed), t0


def run_cell(texts: list[str], y: np.ndarray, emb: np.ndarray, backbone: Any, noisy: np.ndarray, scores: np.ndarray | None,
             seed: int, n_gold: int) -> dict[str, Any]:
    """Every method on one (corpus, noise, seed)."""
    test, train, g_idx = split_and_gold(y, noisy, seed, n_gold)
    gold = gold_set(g_idx, y, train, noisy)
    pool = np.setdiff1d(train, g_idx)
    raw = metrics(y[test], noisy[test], None if scores is None else scores[test])
    out: dict[str, Any] = {"raw judge": raw}

    def from_labels(labels: np.ndarray, s: np.ndarray) -> dict[str, float]:
        return metrics(y[test], labels[test], s[test])

    for name, fallback in ((RUU_J, "judge"), (RUU, "gold")):
        if name == RUU and not out[RUU_J]["fell_back"]:  # the fall-back only acts where the judge's labels would stand
            out[RUU] = out[RUU_J] | {"gold_fallback": False}
            continue
        t0 = time.perf_counter()
        try:
            res = refine(texts, noisy, gold, backbone, iterations=5, judge_scores=scores, holdout=test, seed=seed, fallback=fallback)
            kept = res.selected == 0 and res.gold_fallback is None
            m = raw if kept else from_labels((res.scores > 0).astype(int), res.scores)
            out[name] = m | {"selected": res.selected, "fell_back": kept, "refused": "", "gold_fallback": res.gold_fallback is not None}
        except UserError as exc:  # the tool refuses (e.g. delta too small on this gold sample): the judge's labels stand
            out[name] = raw | {"selected": 0, "fell_back": True, "refused": str(exc)[:160], "gold_fallback": False}
        out[name]["seconds"] = time.perf_counter() - t0

    for name, short, result, t0 in guardable_refiners(texts, noisy, backbone, emb, pool, seed):
        out[f"{short} (unguarded)"] = from_labels(result.labels, result.scores)
        cfg = types.SimpleNamespace(method=short, guard_margin_se=GUARD_MARGIN_SE, seed=seed)
        guarded, info = gold_guard(cfg, gold, result, noisy, backbone, pool)
        m = raw if info["fell_back"] else from_labels(guarded.labels, guarded.scores)
        out[name] = m | {"fell_back": bool(info["fell_back"]), "gold_gain": info["gain_vs_judge"], "seconds": time.perf_counter() - t0}
    for name, rows in (("50 gold only", g_idx), ("all gold (ceiling)", train)):
        g = supervised(backbone, rows, y, test, seed)
        out[name] = metrics(y[test], (g > 0).astype(int), g)
    return out


def paired(per_seed: list[dict[str, Any]], method: str, base: str = "raw judge") -> dict[str, float]:
    """Accuracy of ``method`` minus ``base``'s (the raw judge's), paired by seed: mean, SE, 95% t interval, n."""
    d = np.array([s[method]["acc"] - s[base]["acc"] for s in per_seed])
    n = len(d)
    se = float(d.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    h = float(stats.t.ppf(0.975, n - 1) * se) if n > 1 else float("nan")
    return {"gain": float(d.mean()), "se": se, "lo": float(d.mean()) - h, "hi": float(d.mean()) + h, "n": n}


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    s: dict[str, Any] = {"seeds": len(per_seed), "methods": {}}
    for m in METHODS:
        acc = [r[m]["acc"] for r in per_seed]
        s["methods"][m] = {"acc": float(np.mean(acc)), "acc_std": float(np.std(acc)),
                           "auroc": float(np.mean([r[m]["auroc"] for r in per_seed]))}
        if m != "raw judge":
            s["methods"][m]["vs_raw"] = paired(per_seed, m)
        if "fell_back" in per_seed[0][m]:
            s["methods"][m]["fell_back"] = int(sum(r[m]["fell_back"] for r in per_seed))
    s["ruu_selected"] = [r[RUU_J]["selected"] for r in per_seed]
    s["ruu_refused"] = [r[RUU_J]["refused"] for r in per_seed if r[RUU_J]["refused"]]
    s["ruu_gold_fallback"] = int(sum(r[RUU]["gold_fallback"] for r in per_seed))
    s["ceiling_gap"] = s["methods"]["all gold (ceiling)"]["acc"] - s["methods"]["raw judge"]["acc"]
    return s


def targets(res: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The issue's four targets on the corpora ``names``."""
    cells = res["cells"]
    get = lambda c, n: cells.get(f"{c}/{n}", {}).get("summary")
    cc = {c: get(c, "classcond")["methods"][RUU]["vs_raw"] for c in names if get(c, "classcond")}
    mean_cc = float(np.mean([v["gain"] for v in cc.values()])) if cc else float("nan")
    qw = {c: get(c, "qwen")["methods"][RUU]["vs_raw"] for c in names if get(c, "qwen")}
    below = []
    for c in names:
        for n in C.NOISES:
            s = get(c, n)
            if s is None:
                continue
            for m in REFINERS:
                v = s["methods"][m]["vs_raw"]
                if v["gain"] < -v["se"]:
                    below.append({"cell": f"{c}/{n}", "method": m, "gain": v["gain"], "se": v["se"], "excess": -v["gain"] - v["se"]})
    fb, seeds_fb = [], []
    for c in names:
        for n in C.NOISES:
            for r in cells.get(f"{c}/{n}", {}).get("per_seed", []):
                if r["all gold (ceiling)"]["acc"] - r["raw judge"]["acc"] >= 0.05:
                    seeds_fb.append(bool(r[RUU]["fell_back"]))
    for c in names:
        for n in C.NOISES:
            s = get(c, n)
            if s is not None and s["ceiling_gap"] >= 0.05:
                k = s["methods"][RUU]["fell_back"]
                fb.append({"cell": f"{c}/{n}", "fell_back": k, "seeds": s["seeds"], "rate": k / s["seeds"],
                           "ceiling_gap": s["ceiling_gap"], "met": k / s["seeds"] <= 0.2})
    new = [v["gain"] for c, v in cc.items() if c != "builtin"]
    return {"T1_classcond_mean_gain": {"per_corpus": cc, "mean": mean_cc, "met": mean_cc >= 0.04,
                                       "mean_without_builtin": float(np.mean(new)) if new else float("nan"),
                                       "corpora_below_4": [c for c, v in cc.items() if v["gain"] < 0.04]},
            "T2_qwen_positive": {"per_corpus": qw, "met": bool(qw) and all(v["gain"] > 0 for v in qw.values()) and len(qw) == len(names),
                                 "missing": [c for c in names if c not in qw]},
            "T3_no_refiner_below_raw_by_1se": {"violations": below, "met": not below},
            "T4_fallback_rate": {"cells": fb, "met": all(f["met"] for f in fb),
                                 "per_seed_pooled": {"seeds": len(seeds_fb), "fell_back": int(sum(seeds_fb)),
                                                     "rate": float(np.mean(seeds_fb)) if seeds_fb else float("nan")}}}


def pct(x: float) -> str:
    return f"{100 * x:+.1f}"


def cell_table(s: dict[str, Any]) -> list[str]:
    lines = ["| method | test acc (mean ± std) | AUROC | gain vs raw (points) | SE | 95% interval | fell back |", "|---|---|---|---|---|---|---|"]
    for m in METHODS:
        v = s["methods"][m]
        p = v.get("vs_raw")
        gain = f"{pct(p['gain'])} | {100 * p['se']:.1f} | [{pct(p['lo'])}, {pct(p['hi'])}]" if p else "– | – | –"
        fb = f"{v['fell_back']}/{s['seeds']}" if "fell_back" in v else "–"
        lines.append(f"| {m} | {v['acc']:.3f} ± {v['acc_std']:.3f} | {v['auroc']:.3f} | {gain} | {fb} |")
    lines.append("")
    n_ref = len(s["ruu_refused"])
    lines.append(f"Robust UU selected iteration per seed: {s['ruu_selected']} ({s['ruu_selected'].count(0) - n_ref} judge kept by "
                 f"the gold selection rule, {n_ref} refusals; the gold-only classifier replaced the judge on "
                 f"{s['ruu_gold_fallback']}); all-gold ceiling − raw: {pct(s['ceiling_gap'])} points."
                 + (f" First refusal: {s['ruu_refused'][0]}" if n_ref else ""))
    return lines


def target_lines(t: dict[str, Any]) -> list[str]:
    ok = lambda b: "**met**" if b else "**missed**"
    t1, t2, t3, t4 = (t[k] for k in ("T1_classcond_mean_gain", "T2_qwen_positive", "T3_no_refiner_below_raw_by_1se", "T4_fallback_rate"))
    margin = 100 * (t1["mean"] - 0.04)
    how = f"short by {-margin:.1f} points" if margin < 0 else f"margin {margin:.1f} points"
    lines = [f"1. Robust UU mean gain over raw on class-conditional noise ≥ +4 points: {ok(t1['met'])}: mean {pct(t1['mean'])} ({how}; without the builtin corpus the defaults were tuned on: {pct(t1['mean_without_builtin'])}); "
             "per corpus: " + ", ".join(f"{c} {pct(v['gain'])} ± {100 * v['se']:.1f}" for c, v in t1["per_corpus"].items())
             + (f"; below +4 on: {', '.join(t1['corpora_below_4'])}" if t1["corpora_below_4"] else ""),
             f"2. Robust UU gain positive on the real (Qwen) judge on every corpus: {ok(t2['met'])}: "
             + ", ".join(f"{c} {pct(v['gain'])} ± {100 * v['se']:.1f}" for c, v in t2["per_corpus"].items())
             + (f"; no real-judge result for: {', '.join(t2['missing'])}" if t2["missing"] else ""),
             f"3. No refiner below raw by more than one SE in any cell: {ok(t3['met'])}"
             + ("" if t3["met"] else ": " + "; ".join(f"{v['method']} on {v['cell']} {pct(v['gain'])} (SE {100 * v['se']:.1f}, "
                                                      f"{100 * v['excess']:.1f} points beyond 1 SE)" for v in t3["violations"])),
             f"4. Robust UU falls back on ≤ 1 seed in 5 where the ceiling is ≥ 5 points above raw: {ok(t4['met'])}: "
             + ", ".join(f"{f['cell']} {f['fell_back']}/{f['seeds']}" for f in t4["cells"])
             + f" (per cell, where the mean ceiling − raw ≥ 5 points; pooled over single seeds whose own ceiling − raw ≥ 5 "
             f"points: {t4['per_seed_pooled']['fell_back']}/{t4['per_seed_pooled']['seeds']} = {t4['per_seed_pooled']['rate']:.2f})"]
    return lines


def to_markdown(res: dict[str, Any]) -> str:
    tuned = [c for c in res["corpora"] if c != C.HELD_OUT]
    lines = ["# Multi-corpus refinement benchmark (issue 18)", "", "```", res["command"], "```", "",
             ("(From the repository root. The real judge on `policy` reads the policy rows' Qwen scores from "
             "eval/data/policy_judges.jsonl, which `PYTHONPATH=. OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python eval/corpora.py "
             "judge-policy` writes (480 rows, about an hour on 2 busy CPU cores); without it that cell is listed as not run.)"), "",
             ("Protocol, corpora and noise models: docstrings of eval/bench_corpora.py and eval/corpora.py. Frozen MiniLM "
             "backbone (library default, linear head); accuracy on the 20% test rows of each seed's stratified split; "
             "'gain vs raw' = method accuracy − raw-judge accuracy on the same test rows, mean over seeds (points), "
             "SE over seeds, 95% t interval. 'fell back' = the judge's labels were kept (robust UU: iteration 0 selected "
             "or the tool refused, and no gold-only classifier replaced them; guarded methods: the gold guard rejected the "
             "refiner's labels)."), "",
             "## Corpora", "", "| corpus | rows | harmful | π | refusals | blind-topic rows | sources |", "|---|---|---|---|---|---|---|"]
    for c, d in res["corpora"].items():
        lines.append(f"| {c}{' (held out)' if d['held_out'] else ''} | {d['rows']} | {d['harmful']} | {d['pi']:.2f} | {d['refusals']} | "
                     f"{d['blind_topic_rows']} | {', '.join(f'{k} {v}' for k, v in d['sources'].items())} |")
    lines += ["", *NOTES, *res.get("notes", []), ""]
    lines += ["## Targets (tuning corpora: " + ", ".join(tuned) + ")", "", *target_lines(res["targets"]["tuning"]), "",
              *res.get("verdict", []), ""]
    for c in tuned:
        for n in C.NOISES:
            cell = res["cells"].get(f"{c}/{n}")
            lines += [f"## {c} / {n}", ""]
            lines += cell_table(cell["summary"]) if cell and "summary" in cell else [f"Not run: {(cell or {}).get('missing', 'no seeds finished')}"]
            lines.append("")
    lines += [f"## Held-out corpus: {C.HELD_OUT}", "", "Never used to choose a setting; the targets on it alone:", "",
              *target_lines(res["targets"]["held_out"]), ""]
    for n in C.NOISES:
        cell = res["cells"].get(f"{C.HELD_OUT}/{n}")
        lines += [f"### {C.HELD_OUT} / {n}", ""]
        lines += cell_table(cell["summary"]) if cell and "summary" in cell else ["Not run"]
        lines.append("")
    return "\n".join(lines)


def finish(res: dict[str, Any], out: Path) -> None:
    for cell in res["cells"].values():
        if cell.get("per_seed"):
            cell["summary"] = summarise(cell["per_seed"])
    res["targets"] = {"tuning": targets(res, [c for c in res["corpora"] if c != C.HELD_OUT]),
                      "held_out": targets(res, [C.HELD_OUT])}
    write_json(out.with_suffix(".json"), res)
    out.with_suffix(".md").write_text(to_markdown(res))


def write_grid_report(res: dict[str, Any], out: Path, title: str, protocol: str, summarise: Callable[[list[dict[str, Any]]], Any],
                      overall: Callable[[dict[str, Any], list[str]], Any], overall_lines: Callable[[Any], list[str]],
                      cell_lines: Callable[[Any], list[str]], cell_heading: str = "##", before_cells: tuple[str, ...] = ()) -> None:
    """Per-cell summaries, the tuning and held-out overviews, ``out``.json and ``out``.md of a benchmark run by
    :func:`grid_main` (the held-out corpus is never in the tuning overview)."""
    for cell in res["cells"].values():
        if cell.get("per_seed"):
            cell["summary"] = summarise(cell["per_seed"])
    tuned = [c for c in res["corpora"] if c != C.HELD_OUT]
    res["overall"] = {"tuning": overall(res["cells"], tuned), "held_out": overall(res["cells"], [C.HELD_OUT])}
    write_json(out.with_suffix(".json"), res)
    lines = [f"# {title}", "", "```", res["command"], "```", "", protocol, "",
             "## Tuning corpora (" + ", ".join(tuned) + ")", "", *overall_lines(res["overall"]["tuning"]), "",
             *res.get("verdict", []), "", f"## Held-out corpus: {C.HELD_OUT}", "", *overall_lines(res["overall"]["held_out"]), "",
             *before_cells]
    for key, cell in res["cells"].items():
        if "summary" in cell:
            lines += [f"{cell_heading} {key}", "", *cell_lines(cell["summary"]), ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def load_corpora(names: list[str]) -> tuple[Any, dict[str, tuple[list[dict], list[str], np.ndarray, np.ndarray]]]:
    """The library's default frozen backbone and, per corpus, (rows, classifier texts, gold labels, embeddings)."""
    backbone = build_backbone(FrozenBackboneConfig())
    data = {}
    for c in names:
        rows = C.attach_scores(C.build(c))
        texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
        backbone.prepare(texts)
        data[c] = (rows, texts, np.array([r["gold_label"] for r in rows]), sentence_embeddings(texts, backbone, "all-minilm-l6-v2"))
    return backbone, data


def grid_main(doc: str, seeds: int, out: Path, run_one: Callable[..., dict[str, Any]],
              finish_fn: Callable[[dict[str, Any], Path], None], line: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The command line shared by the corpus benchmarks: ``run_one(texts, y, emb, backbone, noisy, scores, seed, n_gold)``
    per (seed, corpus, noise), results kept in ``out``.json after every cell (``--resume``), ``finish_fn`` per seed."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=seeds)
    ap.add_argument("--corpora", default=",".join(C.CORPORA))
    ap.add_argument("--noises", default=",".join(C.NOISES))
    ap.add_argument("--n-gold", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--resume", action="store_true", help="keep the (cell, seed) results already in the JSON, run the rest")
    ap.add_argument("--report-only", action="store_true", help="rewrite the report (and summaries) from the JSON")
    ap.add_argument("--out", default=str(out))
    args = ap.parse_args()
    out = Path(args.out)
    if args.report_only:
        res = json.loads(out.with_suffix(".json").read_text())
        finish_fn(res, out)
        return res
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    names, noises = args.corpora.split(","), args.noises.split(",")
    res = json.loads(out.with_suffix(".json").read_text()) if args.resume and out.with_suffix(".json").exists() else {}
    res.setdefault("command", "PYTHONPATH=. OMP_NUM_THREADS=1 TQDM_DISABLE=1 nice -n 10 .venv/bin/python " + " ".join(sys.argv))
    res.setdefault("corpora", {})
    res.setdefault("cells", {})
    backbone, data = load_corpora(names)
    res["corpora"].update({c: C.describe(c, data[c][0]) for c in names})
    for seed in range(args.seeds):  # seeds outermost: a run cut short still covers every corpus
        for c in names:
            rows, texts, y, emb = data[c]
            backbone.prepare(texts)
            for n in noises:
                cell = res["cells"].setdefault(f"{c}/{n}", {"per_seed": []})
                if seed in {r["seed"] for r in cell["per_seed"]}:
                    continue
                try:
                    noisy, scores = C.noisy_labels(n, rows, seed)
                except ValueError as exc:
                    cell["missing"] = str(exc)
                    continue
                cell.pop("missing", None)
                t0 = time.perf_counter()
                r = run_one(texts, y, emb, backbone, noisy, scores, seed, args.n_gold)
                cell["per_seed"].append(r | {"seed": seed})
                print(f"[{c}/{n} seed {seed}] {line(r)} ({time.perf_counter() - t0:.0f} s)", flush=True)
                write_json(out.with_suffix(".json"), res)
        finish_fn(res, out)
    finish_fn(res, out)
    return res


def main() -> None:
    res = grid_main(__doc__, 10, HERE / "results" / "refine_corpora", run_cell, finish,
                    lambda r: ", ".join(f"{k} {v['acc']:.3f}" for k, v in r.items() if isinstance(v, dict)) + f"; RUU it {r[RUU]['selected']}")
    print(to_markdown(res))


if __name__ == "__main__":
    main()
