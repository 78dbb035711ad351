"""``rlaif-uu refine --method neighbourhood|confident|ensemble``: run one refiner and write its output folder.

The folder has the robust-UU layout (``refined.jsonl``, ``history.json``, ``config.yaml`` and
``classifier/``), so ``rlaif-uu reward export`` and the pipeline read any method's output.
Gold rows are optional here (required only where a method needs them); when given they never
train, measure the result out of sample and guard it: a neighbourhood or confident-learning
result that does not beat the judge on them is replaced by the judge's labels (:func:`gold_guard`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.assets import resolve_model
from rlaif_uu.config import to_yaml
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.data.io import Row, atomic_dir, read_records, write_json, write_records
from rlaif_uu.data.schema import classifier_text, parse_label
from rlaif_uu.errors import UserError
from rlaif_uu.refine.classify import RefinerOutput, logits_for, train_on_labels
from rlaif_uu.refine.config import REFINE_COLUMNS, RefineConfig, build_backbone, loop_settings
from rlaif_uu.refine.ensemble import accuracy_weighted, check_coverage, dawid_skene, majority
from rlaif_uu.refine.loop import MIN_TRAIN_ROWS, refine
from rlaif_uu.refine.priors import GoldSet, load_gold

NOT_JUDGES = ("judge", "gold", "refined", "human")
AGGREGATES = ("dawid_skene", "gold_accuracy", "majority")
THEN = ("robust_uu", "classifier", "none")


def optional_gold(rows: list[Row], cfg: RefineConfig, strata: np.ndarray) -> GoldSet | None:
    """The gold rows when a gold file or a ``gold_label`` column is given, else ``None``."""

    if not cfg.gold and not any(r.get("gold_label") is not None for r in rows):
        return None
    gold = load_gold([r | {"judge_label": int(s)} for r, s in zip(rows, strata)], cfg.gold)
    return gold


def check_out(cfg: RefineConfig) -> Path:
    """The output folder, refused when it holds files and ``overwrite`` is off."""
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise UserError(f"{out}: output directory exists and is not empty; pass --overwrite or choose another --out")
    return out


def gold_summary(gold: GoldSet | None, labels: np.ndarray, judge: np.ndarray) -> dict[str, Any]:
    """Weighted gold accuracy of the refined labels and of the judge's, and the paired gain."""
    if gold is None:
        return {"n_gold": 0}
    gain, se = gold.gain(labels, judge)
    return {"n_gold": len(gold), "gold_accuracy": asdict(gold.accuracy(labels)),
            "judge_gold_accuracy": asdict(gold.accuracy(judge)), "gain_vs_judge": {"value": gain, "se": se}}


def guard_keeps(gain: float, se: float, margin_se: float) -> bool:
    """The guard's rule: a refiner's labels stand when their gold gain over the judge exceeds ``margin_se`` x SE."""
    return gain > margin_se * se


def gold_guard(cfg: RefineConfig, gold: GoldSet, result: RefinerOutput, judge: np.ndarray, backbone: Any,
               pool: np.ndarray) -> tuple[RefinerOutput, dict[str, Any]]:
    """Keep a refiner's labels only when they beat the judge's on the gold rows, else fall back to the judge.

    The gold rows are outside the training pool, so the refiner's labels there are out-of-sample
    predictions of its final classifier. Keep when the paired weighted gain D over the judge
    exceeds ``guard_margin_se`` x SE (see :meth:`GoldSet.gain`); the default 1 SE was chosen on
    the corpus benchmark's tuning corpora (eval/results/gold_guard.md), where accepting any positive
    D let both refiners land up to 2.6 points below the judge on test rows. On a fall-back the
    labels are the judge's and the classifier is retrained on them, so the reward learns what the
    judge says, not what the refiner got wrong.
    """
    gain, se = gold.gain(result.labels, judge)
    margin = cfg.guard_margin_se
    info = {"gain_vs_judge": gain, "se": se, "margin_se": margin, "fell_back": not guard_keeps(gain, se, margin)}
    if not info["fell_back"]:
        return result, info
    acc, judge_acc = gold.accuracy(result.labels).value, gold.accuracy(judge).value
    print(f"guard: the {cfg.method} labels score {acc:.3f} on the {len(gold)} gold rows vs the judge's {judge_acc:.3f} "
          f"(gain {gain:+.3f}, SE {se:.3f}, needs > {margin:g} SE): using the judge's labels instead")
    fit = train_on_labels(backbone, pool, judge, cfg.seed + 999, desc="judge labels")
    return RefinerOutput(judge.copy(), logits_for(backbone, fit, len(judge)), fit.model, result.diagnostics), info


def write_output(cfg: RefineConfig, rows: list[Row], result: RefinerOutput, backbone: Any, history: dict[str, Any]) -> Path:
    """Write the standard refine folder (atomically) and print a one-line summary."""
    out = Path(cfg.out)
    with atomic_dir(out) as tmp:
        write_records(tmp / "refined.jsonl", [row | {"refined_label": int(result.labels[i]), "refined_score": float(result.scores[i])}
                                               for i, row in enumerate(rows)])
        write_json(tmp / "history.json", history)
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        if result.model is not None:
            backbone.save(result.model, str(tmp / "classifier"))
            write_json(tmp / "classifier" / "refinement.json", {"method": cfg.method})
    acc = history.get("gold_accuracy")
    gold_txt = (f"gold accuracy {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}] vs judge "
                f"{history['judge_gold_accuracy']['value']:.3f}; " if acc else "no gold rows to measure on; ")
    print(f"{cfg.method}: {history.get('flipped', 0)} of {len(rows)} labels changed; {gold_txt}wrote {out}")
    if acc and history["gain_vs_judge"]["value"] < 0:
        print(f"warning: the {cfg.method} labels are less accurate than the judge's on the gold rows; "
              "compare methods with eval/bench_refiners.py before using them")
    return out


def judge_columns(rows: list[Row], names: list[str] | None, source: str) -> tuple[list[str], np.ndarray]:
    """Judge names and their (n_rows, n_judges) votes (−1 = missing) from the ``<name>_label`` columns.

    Raises:
        UserError: fewer than two judges, a named judge without a column, or an invalid label cell.
    """
    found = list(dict.fromkeys(k[: -len("_label")] for r in rows for k in r if k.endswith("_label")))
    if names is None:
        names = [n for n in found if n not in NOT_JUDGES]
    missing = [n for n in names if n not in found]
    if missing:
        raise UserError(f"{source}: no column '{missing[0]}_label'; judges with label columns: {', '.join(found) or 'none'}")
    if len(names) < 2:
        raise UserError(f"{source}: an ensemble needs at least two judges' <name>_label columns, found "
                        f"{names or 'none'}; judge with several --judge options of `rlaif-uu label`")
    votes = np.full((len(rows), len(names)), -1, dtype=int)
    for i, row in enumerate(rows):
        for j, n in enumerate(names):
            try:
                v = parse_label(row.get(f"{n}_label"))
            except ValueError as exc:
                raise UserError(f"{source} row {i + 1} (id {row['id']!r}): field '{n}_label': {exc}") from None
            votes[i, j] = -1 if v is None else v
    return names, votes


def _ensemble(cfg: RefineConfig, rows: list[Row], texts: list[str], backbone: Any) -> tuple[RefinerOutput, dict[str, Any], np.ndarray, GoldSet | None]:
    ec = cfg.ensemble
    check_choice("ensemble.aggregate", ec.aggregate, AGGREGATES)
    check_choice("ensemble.then", ec.then, THEN)
    names, votes = judge_columns(rows, ec.judges, str(cfg.input))
    if not ec.allow_missing:
        check_coverage(votes, names, [r["id"] for r in rows], str(cfg.input))
    vote = majority(votes)
    vote_labels = (vote > 0.5).astype(int)
    gold = optional_gold(rows, cfg, vote_labels)
    if ec.aggregate == "majority":
        post = vote
        diag: dict[str, Any] = {}
    elif ec.aggregate == "gold_accuracy":
        if gold is None:
            raise UserError("ensemble.aggregate=gold_accuracy needs gold rows: pass --gold FILE")
        post, diag = accuracy_weighted(votes, gold.index, gold.labels), {}
    else:
        ds = dawid_skene(votes, ec.model)
        post = ds.posterior
        diag = {"iterations": ds.iterations, "prior": ds.prior,
                "judges": {n: {"sensitivity": float(a), "specificity": float(b), "accuracy": float(c)}
                           for n, a, b, c in zip(names, ds.sensitivity, ds.specificity, ds.accuracy())}}
    agg = (post > 0.5).astype(int)
    logodds = np.log(np.clip(post, 1e-6, 1 - 1e-6)) - np.log1p(-np.clip(post, 1e-6, 1 - 1e-6))
    diag |= {"names": names, "aggregate": ec.aggregate, "then": ec.then, "aggregate_vs_majority": int((agg != vote_labels).sum())}
    if ec.then == "none":
        return RefinerOutput(agg, logodds, None, diag), diag, vote_labels, gold
    if ec.then == "classifier":
        from rlaif_uu.refine.classify import logits_for, train_on_labels

        pool = np.setdiff1d(np.arange(len(rows)), gold.index if gold else [])
        if len(pool) < MIN_TRAIN_ROWS:
            raise UserError(f"{cfg.input}: only {len(pool)} rows are left to train on once the {len(rows) - len(pool)} "
                            f"gold rows are set aside (gold rows never train); {cfg.method} needs at least "
                            f"{MIN_TRAIN_ROWS}: judge more rows, or label a smaller gold sample")
        backbone.prepare(texts)
        res = train_on_labels(backbone, pool, agg, cfg.seed)
        g = logits_for(backbone, res, len(rows))
        labels = (g > 0).astype(int)
        labels[pool] = agg[pool]
        return RefinerOutput(labels, g, res.model, diag), diag, vote_labels, gold

    if gold is None:
        raise UserError("ensemble.then=robust_uu needs gold rows for the priors: pass --gold FILE (or ensemble.then=classifier)")
    gold = GoldSet.from_strata(gold.index, gold.labels, agg)
    res = refine(texts, agg, gold, backbone, **loop_settings(cfg), judge_scores=logodds)
    diag |= {"robust_uu": res.history_dict()}
    scores = res.scores if res.scores is not None else logodds
    return RefinerOutput(res.labels, scores, res.model, diag), diag, vote_labels, gold


def run_method(cfg: RefineConfig) -> Path:
    """Run ``cfg.method`` (neighbourhood, confident or ensemble) end to end and write ``cfg.out``."""
    ensemble = cfg.method == "ensemble"
    rows = read_records(cfg.input, required=("prompt", "response") if ensemble else REFINE_COLUMNS)
    backbone = build_backbone(cfg.backbone)
    resolve_model(backbone.model_name)
    check_out(cfg)
    texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
    if ensemble:
        result, diag, judge, gold = _ensemble(cfg, rows, texts, backbone)
    else:
        judge = np.array([r["judge_label"] for r in rows])
        gold = optional_gold(rows, cfg, judge)
        pool = np.setdiff1d(np.arange(len(rows)), gold.index if gold else [])
        if len(pool) < MIN_TRAIN_ROWS:
            raise UserError(f"{cfg.input}: only {len(pool)} rows are left to train on once the {len(rows) - len(pool)} "
                            f"gold rows are set aside (gold rows never train); {cfg.method} needs at least "
                            f"{MIN_TRAIN_ROWS}: judge more rows, or label a smaller gold sample")
        if cfg.method == "neighbourhood":
            from rlaif_uu.refine.classify import sentence_embeddings
            from rlaif_uu.refine.neighbourhood import neighbourhood_refine

            nc = cfg.neighbourhood
            backbone.prepare(texts)
            emb = sentence_embeddings(texts, backbone, nc.embedding_model)
            result = neighbourhood_refine(texts, judge, backbone, emb, pool, k=nc.k, certain=nc.certain, two=nc.two,
                                          noisy_threshold=nc.noisy_threshold, checkpoints=nc.checkpoints, rounds=nc.rounds,
                                          alpha=nc.alpha, distance=nc.distance, seed=cfg.seed)
        else:
            from rlaif_uu.refine.confident import confident_refine

            result = confident_refine(texts, judge, backbone, pool, folds=cfg.confident.folds,
                                      relabel=cfg.confident.relabel, seed=cfg.seed)
        diag = result.diagnostics
        if gold is not None:
            result, diag["guard"] = gold_guard(cfg, gold, result, judge, backbone, pool)
    history = {"method": cfg.method, "n_rows": len(rows), "flipped": int((result.labels != judge).sum()),
               **gold_summary(gold, result.labels, judge), "diagnostics": diag}
    return write_output(cfg, rows, result, backbone, history)
