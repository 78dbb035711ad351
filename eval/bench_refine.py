"""Refinement benchmark: every method on the offline gold corpus, several judges, seeds and backbones.

Rerun (writes eval/results/refine_<backbone>.{json,md}):

    .venv/bin/python eval/bench_refine.py --backbone frozen --seeds 10
    .venv/bin/python eval/bench_refine.py --backbone encoder --seeds 5 --judges simulated --methods pn,gold \
        --iterations 3 --threads 1 --set train_layers=2 epochs=3 lr=5e-5

Protocol: the 800-row corpus of :func:`rlaif_uu.data.corpus.build_safety_corpus`
is split 80/20 (stratified by gold, per seed). Judges label every row; 50 gold
labels are drawn from the training split with ``sample_gold`` (25 inside each
pseudo set). Test rows are never trained on; every metric is on them.
Real-judge scores come from ``eval/data/corpus_judges.jsonl`` (eval/judge_corpus.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from rlaif_uu.data.corpus import build_safety_corpus, simulate_judge
from rlaif_uu.data.io import write_json
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import backbone_config, build_backbone
from rlaif_uu.refine.loop import refine
from rlaif_uu.refine.losses import pn_risk
from rlaif_uu.refine.priors import GoldSet, sample_gold
from rlaif_uu.refine.train import fit, predict

HERE = Path(__file__).parent
JUDGE_FILE = HERE / "data" / "corpus_judges.jsonl"


def corpus_arrays() -> tuple[list[str], np.ndarray, list[str]]:
    """Classifier texts, gold labels and ids of the benchmark corpus (``build_safety_corpus(seed=0)``)."""
    corpus = build_safety_corpus(seed=0)
    return ([classifier_text(r["prompt"], r["response"]) for r in corpus], np.array([r["gold_label"] for r in corpus]),
            [r["id"] for r in corpus])


def metrics(y: np.ndarray, labels: np.ndarray, scores: np.ndarray | None) -> dict[str, float]:
    """Accuracy, F1 (harmful = positive) and AUROC (from scores, else from labels)."""
    s = labels if scores is None else scores
    return {"acc": float((labels == y).mean()), "f1": float(f1_score(y, labels, zero_division=0)),
            "auroc": float(roc_auc_score(y, s))}


def supervised(backbone: Any, rows: np.ndarray, y: np.ndarray, test: np.ndarray, seed: int) -> np.ndarray:
    """Train the same backbone with the PN risk on true labels of ``rows``; logits on ``test``."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(rows)
    n_val = max(2, len(perm) // 10)
    val, train = perm[:n_val], perm[n_val:]
    split = lambda r: (r[y[r] == 1], r[y[r] == 0])
    model = backbone.new_model(seed)
    res = fit(backbone, model, split(train), split(val), pn_risk, pn_risk, seed, desc="supervised")
    return predict(backbone, res.model, test)


def judge_labels(name: str, y: np.ndarray, ids: list[str], seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and scores, if any) of a judge for every corpus row."""
    if name == "simulated":
        return simulate_judge(y, 0.35, 0.15, seed=seed), None
    if not JUDGE_FILE.exists():
        sys.exit(f"{JUDGE_FILE} is missing: run .venv/bin/python eval/judge_corpus.py first")
    column, _, frac = name.partition("@")
    table = {r["id"]: r for r in map(json.loads, JUDGE_FILE.read_text().splitlines())}
    scores = np.array([table[i][f"{column}_score"] for i in ids], dtype=float)
    threshold = float(np.quantile(scores, 1 - float(frac))) if frac else 0.0
    return (scores > threshold).astype(int), scores


def split_and_gold(y: np.ndarray, noisy: np.ndarray, seed: int, n_gold: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(test, train, gold rows): a seeded held-out 20% of each class, the rest, and ``n_gold`` rows drawn in the
    judge's pseudo sets of the training split (``sample_gold``)."""
    rng = np.random.default_rng(1000 + seed)
    test = np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[: round(0.2 * (y == c).sum())] for c in (0, 1)]))
    train = np.setdiff1d(np.arange(len(y)), test)
    return test, train, train[sample_gold(noisy[train], n_gold, seed)]


def gold_set(g_idx: np.ndarray, y: np.ndarray, train: np.ndarray, labels: np.ndarray) -> GoldSet:
    """The gold rows weighted by the strata of ``labels`` over the training split (test rows are no stratum)."""
    return GoldSet.from_strata(g_idx, y[g_idx], np.where(np.isin(np.arange(len(y)), train), labels, -1))


METHODS = ("pn", "uu", "oracle", "gold", "alone", "nostack", "recal")
"""Optional baselines; the raw judge, robust UU (50 gold) and the all-gold upper bound always run."""


def run_seed(texts: list[str], y: np.ndarray, ids: list[str], judge: str, backbone: Any, seed: int,
             n_gold: int, iterations: int, methods: tuple[str, ...] = METHODS, **refine_kw: Any) -> dict[str, Any]:
    """The chosen baselines plus raw judge, robust UU and all-gold for one (judge, seed)."""
    noisy, scores = judge_labels(judge, y, ids, seed)
    test, train, g_idx = split_and_gold(y, noisy, seed, n_gold)
    gold = gold_set(g_idx, y, train, noisy)
    out: dict[str, Any] = {"raw judge": metrics(y[test], noisy[test], None if scores is None else scores[test])}

    def timed(name: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        res = fn()
        out[name]["seconds"] = time.perf_counter() - t0
        return res

    def from_logits(g: np.ndarray) -> dict[str, float]:
        return metrics(y[test], (g > 0).astype(int), g)

    def chosen(res: Any) -> dict[str, Any]:
        """Test metrics of the iteration the default rule picked (0: the judge's own labels and scores)."""
        if res.gold_fallback:
            return from_logits(res.scores[test]) | {"selected": "gold-only"}
        return (out["raw judge"] if res.selected == 0 else from_logits(res.all_scores[res.selected][test])) | {"selected": res.selected}

    # fallback=judge: the setting the committed results were measured with (eval/bench_corpora.py compares both)
    common = dict(judge_scores=scores, holdout=test, seed=seed, fallback="judge") | refine_kw
    for key, name, kw in (("pn", "PN on pseudo labels", dict(loss="pn", iterations=1, select="last")),
                          ("uu", "plain UU", dict(loss="uu", iterations=1, select="last"))):
        if key not in methods:
            continue
        out[name] = {}
        res = timed(name, lambda kw=kw: refine(texts, noisy, gold, backbone, **kw, **common))
        out[name] |= from_logits(res.all_scores[1][test])
    out["robust UU (50 gold)"] = {}
    res = timed("robust UU (50 gold)", lambda: refine(texts, noisy, gold, backbone, iterations=iterations, **common))
    sel = res.selected
    out["robust UU (50 gold)"] |= chosen(res)
    if "nostack" in methods:  # the loop relabelling by the classifier alone (combine=none), same rule
        out["robust UU, no stacking"] = {}
        res_n = timed("robust UU, no stacking", lambda: refine(texts, noisy, gold, backbone, iterations=iterations,
                                                               **(common | {"combine": "none"})))
        out["robust UU, no stacking"] |= chosen(res_n)
    if "recal" in methods:  # the judge's own score (or label) recalibrated on the gold rows: 50 labels, no classifier
        ev = (noisy if scores is None else scores).astype(float)
        lr = LogisticRegression().fit(ev[gold.index, None], gold.labels, sample_weight=gold.weights)
        out[f"judge recalibrated on {n_gold} gold"] = from_logits(lr.decision_function(ev[test, None]))
    if "alone" in methods:  # the classifier without the judge's verdict: what an exported reward model scores
        t = max(sel, 1)
        out["robust UU classifier alone"] = from_logits(res.classifier_scores[t][test]) | {"iteration": t}
    out["robust UU per iteration"] = {
        str(t): from_logits(g[test]) | {"gold_acc": res.history[t].gold_accuracy["value"]} for t, g in res.all_scores.items()
    }
    if "oracle" in methods:
        oracle = GoldSet(train, y[train], np.ones(len(train)))
        out["robust UU (oracle priors)"] = {}
        res_o = timed("robust UU (oracle priors)", lambda: refine(texts, noisy, oracle, backbone, iterations=iterations,
                                                                  exclude_gold=False, **common))
        out["robust UU (oracle priors)"] |= from_logits(res_o.all_scores[max(res_o.selected, 1)][test])
    for key, name, rows in (("gold", f"{n_gold} gold only", g_idx), ("all-gold", "all gold (upper bound)", train)):
        if key not in methods and key != "all-gold":
            continue
        out[name] = {}
        out[name] |= from_logits(timed(name, lambda rows=rows: supervised(backbone, rows, y, test, seed)))
    return out


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Mean and standard deviation over seeds of every method's metrics."""
    summary: dict[str, dict[str, list[float]]] = {}
    for method in per_seed[0]:
        if method == "robust UU per iteration":
            continue
        for metric in per_seed[0][method]:
            vals = [s[method][metric] for s in per_seed]
            summary.setdefault(method, {})[metric] = [float(np.mean(vals)), float(np.std(vals))]
    its = sorted({t for s in per_seed for t in s["robust UU per iteration"]}, key=int)
    for t in its:
        vals = [s["robust UU per iteration"][t]["acc"] for s in per_seed if t in s["robust UU per iteration"]]
        summary.setdefault("robust UU per iteration (acc)", {})[t] = [float(np.mean(vals)), float(np.std(vals)), len(vals)]
    return summary


def paired(per_seed: list[dict[str, Any]], method: str = "robust UU (50 gold)") -> dict[str, list[float]]:
    """Per-seed accuracy differences of ``method`` over every other method: mean, std, wins, seeds."""
    out: dict[str, list[float]] = {}
    for other in per_seed[0]:
        if other in (method, "robust UU per iteration"):
            continue
        d = np.array([s[method]["acc"] - s[other]["acc"] for s in per_seed])
        out[other] = [float(d.mean()), float(d.std()), int((d > 0).sum()), len(d)]
    return out


def to_markdown(results: dict[str, Any]) -> str:
    """The results table, one block per judge."""
    lines = [f"# Refinement benchmark: backbone `{results['backbone']['kind']}`", "",
             f"Command: `{results['command']}`", "",
             f"Corpus: {results['corpus']}. Metrics on the held-out 20% (mean ± std over seeds).", "",
             *([f"Seeds pooled from (finished seeds each run had written): {results['pooled']}", ""] if "pooled" in results else [])]
    for judge, block in results["judges"].items():
        refused = block.get("refused", [])
        if "summary" not in block:
            lines += [f"## Judge: {judge}", "", f"Refused on every seed: {refused[0]['error']}", ""]
            continue
        s = block["summary"]
        lines += [f"## Judge: {judge} ({len(block['per_seed'])} seeds)", "", "| method | accuracy | F1 | AUROC | seconds |", "|---|---|---|---|---|"]
        for method, m in s.items():
            if "per iteration" in method:
                continue
            sec = f"{m['seconds'][0]:.1f}" if "seconds" in m else "-"
            lines.append(f"| {method} | {m['acc'][0]:.3f} ± {m['acc'][1]:.3f} | {m['f1'][0]:.3f} ± {m['f1'][1]:.3f} | "
                         f"{m['auroc'][0]:.3f} ± {m['auroc'][1]:.3f} | {sec} |")
        per_it = s.get("robust UU per iteration (acc)", {})
        lines += ["", "Robust UU test accuracy per iteration (0 = judge): " +
                  ", ".join(f"it{t} {v[0]:.3f}" for t, v in per_it.items()),
                  f"Iteration picked by the default rule, per seed: {[r['robust UU (50 gold)']['selected'] for r in block['per_seed']]}",
                  *([f"Refused on {len(refused)} seed(s) (not in the means): {refused[0]['error']}"] if refused else []),
                  "Gap recovered (robust UU vs raw, relative to all-gold): " + (
                      f"{block['gap_recovered']:.0%}" if block["gap_recovered"] is not None else "n/a (the raw judge beats the all-gold classifier)")
                  + (" (95% bootstrap interval over seeds: {:.0%} to {:.0%})".format(*block["gap_recovered_ci"]) if block.get("gap_recovered_ci") else ""),
                  "Paired accuracy difference of robust UU (50 gold) over each method, mean ± std over seeds (wins/seeds): " +
                  "; ".join(f"{m} {d[0]:+.3f} ± {d[1]:.3f} ({d[2]}/{d[3]})" for m, d in paired(block["per_seed"]).items()), ""]
    if "iter5_seconds" in results:
        lines.append(f"Embedding pass (800 rows, uncached): {results['embed_seconds']:.1f} s; "
                     f"5 robust-UU iterations (mean): {results['iter5_seconds']:.1f} s "
                     f"({results['iter5_seconds'] / results['embed_seconds']:.2f}× the embedding pass)")
    return "\n".join(lines) + "\n"


def gap_recovered(per_seed: list[dict[str, Any]]) -> float | None:
    """(robust UU − raw) / (all gold − raw) on the seed means; ``None`` when the raw judge beats all gold."""
    raw, rob, top = (float(np.mean([s[m]["acc"] for s in per_seed])) for m in ("raw judge", "robust UU (50 gold)", "all gold (upper bound)"))
    return (rob - raw) / (top - raw) if top > raw else None


def gap_interval(per_seed: list[dict[str, Any]], draws: int = 2000) -> list[float] | None:
    """95% percentile bootstrap interval of :func:`gap_recovered`, resampling seeds."""
    if len(per_seed) < 2:
        return None
    rng = np.random.default_rng(0)
    boot = [gap_recovered([per_seed[i] for i in rng.integers(len(per_seed), size=len(per_seed))]) for _ in range(draws)]
    boot = [b for b in boot if b is not None]
    return [float(q) for q in np.quantile(boot, [0.025, 0.975])] if boot else None


def judge_block(per_seed: list[dict[str, Any]], refused: list[dict[str, Any]]) -> dict[str, Any]:
    """Summary, per-seed results, refusals and the share of the raw → all-gold gap robust UU recovers (with its
    bootstrap interval over seeds)."""
    if not per_seed:
        return {"refused": refused}
    gap = gap_recovered(per_seed)
    return {"summary": summarise(per_seed), "per_seed": per_seed, "refused": refused,
            "gap_recovered": gap, "gap_recovered_ci": None if gap is None else gap_interval(per_seed)}


def write_results(results: dict[str, Any], out: Path) -> None:
    """JSON and Markdown (rewritten after every seed, so a long run leaves its finished seeds)."""
    write_json(out.with_suffix(".json"), results)
    out.with_suffix(".md").write_text(to_markdown(results))


def merge(files: list[str], out: Path) -> None:
    """Pool the seeds of several result files of the same setting (e.g. seed ranges run side by side)."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    counts = [len(next(iter(p["judges"].values())).get("per_seed", [])) for p in parts]
    results = parts[0] | {"command": " && ".join(p["command"] for p in parts) + f" && python eval/bench_refine.py --merge {' '.join(files)} --out {out}",
                          "seeds": sum(counts), "judges": {},
                          "pooled": ", ".join(f"{Path(f).name}: {n} seed(s)" for f, n in zip(files, counts))}
    for judge in [j for j in parts[0]["judges"] if all(j in p["judges"] for p in parts)]:  # the judges every part ran
        blocks = [p["judges"][judge] for p in parts]
        results["judges"][judge] = judge_block([r for b in blocks for r in b.get("per_seed", [])],
                                               [r for b in blocks for r in b.get("refused", [])])
    write_results(results, out)
    print(to_markdown(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="frozen", choices=["frozen", "encoder", "causal"])
    ap.add_argument("--judges", default="simulated,qwen,minilm",
                    help="comma-separated: 'simulated', or a column of corpus_judges.jsonl labelled at score > 0, "
                    "or COLUMN@F to label the top fraction F harmful (a user's assumed harmful share, not from gold)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0, help="run seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="pool the seeds of these result JSON files (the judges they all ran) into --out; run nothing")
    ap.add_argument("--n-gold", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    ap.add_argument("--refine", nargs="*", default=[], metavar="KEY=VALUE",
                    help="refine() keyword overrides for every method, e.g. margin_se=0 combine=none")
    ap.add_argument("--set", nargs="*", default=[], help="backbone overrides key=value (e.g. epochs=2)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 when sharing the CPU with another job)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out = Path(args.out or HERE / "results" / f"refine_{args.backbone}")
    if args.merge:
        merge(args.merge, out)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    refine_kw = {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.refine)}
    cfg = backbone_config(args.backbone, **{k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.set)})
    backbone = build_backbone(cfg)
    texts, y, ids = corpus_arrays()
    results: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "backbone": vars(cfg), "seeds": args.seeds,
                               "corpus": f"{len(y)} rows, {int(y.sum())} harmful (build_safety_corpus(seed=0))", "judges": {}}
    if args.backbone == "frozen":
        t0 = time.perf_counter()
        backbone.embed(texts)
        results["embed_seconds"] = time.perf_counter() - t0
    for judge in args.judges.split(","):
        per_seed, refused = [], []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            try:
                per_seed.append(run_seed(texts, y, ids, judge, backbone, seed, args.n_gold, args.iterations,
                                         tuple(args.methods.split(",")), **refine_kw))
            except UserError as exc:  # the tool refuses this judge (e.g. Δ too small): a result, not a crash
                refused.append({"seed": seed, "error": str(exc)})
                print(f"[{judge} seed {seed}] refused: {exc}", flush=True)
                continue
            r = per_seed[-1]
            print(f"[{judge} seed {seed}] raw {r['raw judge']['acc']:.3f} robust {r['robust UU (50 gold)']['acc']:.3f} "
                  f"(it {r['robust UU (50 gold)']['selected']}) all-gold {r['all gold (upper bound)']['acc']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
            results["judges"][judge] = judge_block(per_seed, refused)
            write_results(results, out)
        results["judges"][judge] = judge_block(per_seed, refused)
    if args.backbone == "frozen":
        results["iter5_seconds"] = float(np.mean([r["robust UU (50 gold)"]["seconds"] for b in results["judges"].values()
                                                  for r in b.get("per_seed", [])]))
    write_results(results, out)
    print(to_markdown(results))


if __name__ == "__main__":
    main()
