"""``rlaif-uu refine``: refine judge labels; ``rlaif-uu refine sample-gold``: draw rows to label."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.assets import resolve_model
from rlaif_uu.config import load_config, to_yaml
from rlaif_uu.config_ranges import AT_LEAST_1, check_number
from rlaif_uu.data.io import Row, atomic_dir, check_output, read_records, write_json, write_records
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import RefineConfig, build_backbone, loop_settings
from rlaif_uu.refine.priors import GoldSet, sample_gold

MIN_GOLD = 10
REFINE_COLUMNS = ("prompt", "response", "judge_label")
log = logging.getLogger(__name__)
METHODS = ("robust_uu", "neighbourhood", "confident", "ensemble", "active")


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


def run_refine(cfg: RefineConfig) -> Path | None:
    """Run ``cfg.method`` end to end and write ``cfg.out`` (atomically: all or nothing).

    ``active`` returns ``None`` while its labelling queue waits for a person.
    """
    if cfg.method not in METHODS:
        raise UserError(f"method '{cfg.method}' is unknown; use one of {', '.join(METHODS)}")
    check_output(cfg.out, folder=True)  # every method writes a folder; fail before any training
    if cfg.method == "active":
        from rlaif_uu.refine.queue import run_active_queue

        return run_active_queue(cfg)
    if cfg.method != "robust_uu":
        from rlaif_uu.refine.methods import run_method

        return run_method(cfg)
    # torch and matplotlib load only when a verb runs
    from rlaif_uu.refine.loop import refine
    from rlaif_uu.refine.report import plot_history

    out = Path(cfg.out)
    rows = read_records(cfg.input, required=REFINE_COLUMNS)
    gold = load_gold(rows, cfg.gold)
    backbone = build_backbone(cfg.backbone)
    resolve_model(backbone.model_name)  # fail before any work when the model path does not exist
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise UserError(f"{out}: output directory exists and is not empty; pass --overwrite or choose another --out")
    with atomic_dir(out) as tmp:
        texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
        judge = np.array([r["judge_label"] for r in rows])
        scores = [r.get("judge_score") for r in rows]
        result = refine(texts, judge, gold, backbone, **loop_settings(cfg),
                        judge_scores=None if any(s is None for s in scores) else np.array(scores, dtype=float))
        refined: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            score = None if result.scores is None else float(result.scores[i])
            refined.append(row | {"refined_label": int(result.labels[i]), "refined_score": score})
        write_records(tmp / "refined.jsonl", refined)
        history = result.history_dict() | {"n_rows": len(rows), "n_gold": len(gold), "loss": cfg.loss, "lam": cfg.lam}
        write_json(tmp / "history.json", history)
        plot_history(history, tmp / "history.png")
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        if result.model is not None:
            backbone.save(result.model, str(tmp / "classifier"))
            write_json(tmp / "classifier" / "refinement.json",
                       {"iteration": result.model_iteration, "selected_iteration": result.selected})
    best = result.history[result.selected]
    acc = best.gold_accuracy
    print(f"selected iteration {result.selected} of {len(result.history) - 1} ({result.stop_reason}); "
          f"gold accuracy {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}]; wrote {out}")
    if best.stacking:
        w = best.stacking
        print(f"relabelled by the classifier stacked with the judge on the gold rows: "
              f"{w['classifier']:.2f}·g {w['judge']:+.2f}·judge {w['intercept']:+.2f} (history.json: stacking)")
    if result.selected == 0:
        print("warning: no refinement iteration beat the judge's own labels on the gold rows; "
              "refined labels are the judge's (see history.png)")
    elif best.gain_vs_judge["value"] <= best.gain_vs_judge["se"]:
        print(f"note: iteration {result.selected} beats the judge on the gold rows by {best.gain_vs_judge['value']:+.3f} "
              f"± {best.gain_vs_judge['se']:.3f} (SE), within noise; label more gold rows to tell, or set margin_se=1 "
              "to keep the judge's labels unless the gain is clear")
    return out


def run_sample_gold(input_path: str, n: int, out: str, seed: int, overwrite: bool) -> Path:
    """Write ``n`` rows to label by hand (half pseudo-harmful, half pseudo-safe) with an empty gold_label."""
    check_number("--n", n, AT_LEAST_1)
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out}: file exists; pass --overwrite or choose another --out")
    check_output(out)
    rows = read_records(input_path, required=REFINE_COLUMNS)
    picked = sample_gold(np.array([r["judge_label"] for r in rows]), n, seed)
    todo = [{"id": rows[i]["id"], "prompt": rows[i]["prompt"], "response": rows[i]["response"],
             "judge_label": rows[i]["judge_label"], "gold_label": None} for i in picked]
    write_records(out, todo)
    n_pos = sum(r["judge_label"] for r in todo)
    print(f"wrote {len(todo)} rows to {out} ({n_pos} the judge called harmful, {len(todo) - n_pos} safe); "
          "fill in gold_label with harmful or safe, then pass the file as --gold")
    return Path(out)


def add_parser(subparsers: Any) -> None:
    """Register ``refine`` and ``sample-gold`` on the main parser."""
    p = subparsers.add_parser(
        "refine",
        help="refine noisy judge labels into a robust classifier (robust UU, neighbourhood, confident, ensemble, active)",
        description="Refine judge labels: iterative robust unlabeled-unlabeled learning (default), or --method "
        "neighbourhood (SiDyP-style kNN candidates), confident (confident learning), ensemble (several judges' "
        "<name>_label columns, Dawid-Skene), active (a human labelling queue; also `rlaif-uu refine active ...`). "
        "Settings: dataclass defaults < --config YAML < flags < dotted overrides (e.g. backbone.lr=1e-3, "
        "neighbourhood.k=20). Draw the gold rows to label first with `rlaif-uu refine sample-gold --help`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--method", choices=METHODS, help="refiner (default robust_uu); also as the first word: `refine active ...`")
    p.add_argument("--input", help="JSONL/CSV/Parquet/saved-dataset with prompt, response, judge_label")
    p.add_argument("--gold", help="gold file with id and gold_label (default: the input's gold_label column)")
    p.add_argument("--out", help="output directory")
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--backbone", dest="backbone_kind", choices=["frozen", "encoder", "causal"], help="classifier family (default frozen)")
    p.add_argument("--model", help="backbone model: alias, local folder or hub id")
    p.add_argument("--loss", choices=["robust_uu", "uu", "pn"], help="training risk (default robust_uu)")
    p.add_argument("--lam", type=float, help="λ of the robust correction (default -0.001)")
    p.add_argument("--iterations", type=int, help="maximum refinement iterations K (default 5)")
    p.add_argument("--select", choices=["gold", "last"], help="which iteration to return (default gold)")
    p.add_argument("--combine", choices=["judge", "none"],
                   help="relabel by the classifier stacked with the judge's score/label on the gold rows (judge, default) "
                   "or by the classifier alone (none)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace a non-empty --out")
    p.add_argument("--queue", help="active: labelling queue file (.jsonl/.csv), created when missing; rerun after filling human_label")
    p.add_argument("--budget", type=int, help="active: rows a person labels in all (default 100)")
    p.add_argument("--batch", type=int, help="active: rows per round (default 25)")
    p.add_argument("--simulate-from", dest="simulate_from", help="active: answer the queue from this file's gold_label (simulated annotator)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    s = subparsers.add_parser(
        "sample-gold",
        help="write rows for a human to label (half from each pseudo set); also `refine sample-gold`",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    s.add_argument("--input", required=True, help="the judged corpus")
    s.add_argument("--n", type=int, default=50, help="rows to label")
    s.add_argument("--out", required=True, help="file to write (.csv for spreadsheets, or .jsonl)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.set_defaults(func=lambda a: run_sample_gold(a.input, a.n, a.out, a.seed, a.overwrite) and None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``refine`` command."""
    flags = {k: getattr(args, k) for k in ("input", "gold", "out", "loss", "lam", "iterations", "select", "combine", "seed", "overwrite")}
    flags["backbone"] = {k: v for k, v in (("kind", args.backbone_kind), ("model", args.model)) if v is not None}
    flags["active"] = {k: getattr(args, k) for k in ("queue", "budget", "batch", "simulate_from") if getattr(args, k) is not None}
    overrides = list(args.overrides or [])
    if overrides and overrides[0] in METHODS:  # `rlaif-uu refine active --queue ...`
        if args.method and args.method != overrides[0]:
            raise UserError(f"method given twice: '{overrides[0]}' and --method {args.method}; give one")
        flags["method"] = overrides.pop(0)
    else:
        flags["method"] = args.method
    cfg = load_config(RefineConfig, args.config, flags, overrides)
    run_refine(cfg)
    return 0
