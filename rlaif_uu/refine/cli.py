"""``rlaif-uu refine`` and ``rlaif-uu refine sample-gold``: parse the command line and call :mod:`rlaif_uu.refine.run`."""

from __future__ import annotations

import argparse
from typing import Any

from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import METHODS, RefineConfig
from rlaif_uu.refine.run import run_refine, run_sample_gold


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``refine`` and ``sample-gold`` on the main parser."""
    p = subparsers.add_parser(
        "refine", parents=[common],
        help="refine noisy judge labels into a robust classifier (robust UU, neighbourhood, confident, ensemble, active)",
        description="Refine judge labels: iterative robust unlabeled-unlabeled learning (default), or --method "
        "neighbourhood (SiDyP-style kNN candidates), confident (confident learning), ensemble (several judges' "
        "<name>_label columns, Dawid-Skene), active (a human labelling queue; also `rlaif-uu refine active ...`). "
        "Settings: dataclass defaults < --config YAML < flags < dotted overrides (e.g. backbone.lr=1e-3, "
        "neighbourhood.k=20). Draw the gold rows to label first with `rlaif-uu refine sample-gold --help`.",
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
    p.add_argument("--fallback", choices=["gold", "judge"],
                   help="when the judge's labels would be returned: a classifier trained on the gold rows alone replaces them "
                   "if it beats them on those rows, cross-fitted (gold, default), or they stand (judge)")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace a non-empty --out")
    p.add_argument("--queue", help="active: labelling queue file (.jsonl/.csv), created when missing; rerun after filling human_label")
    p.add_argument("--budget", type=int, help="active: rows a person labels in all (default 100)")
    p.add_argument("--batch", type=int, help="active: rows per round (default 25)")
    p.add_argument("--simulate-from", dest="simulate_from", help="active: answer the queue from this file's gold_label (simulated annotator)")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    s = subparsers.add_parser(
        "sample-gold", parents=[common],
        help="write rows for a human to label (half from each pseudo set); also `refine sample-gold`",
    )
    s.add_argument("--input", required=True, help="the judged corpus")
    s.add_argument("--n", type=int, default=50, help="rows to label (default 50)")
    s.add_argument("--out", required=True, help="file to write (.csv for spreadsheets, or .jsonl)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    s.set_defaults(func=lambda a: run_sample_gold(a.input, a.n, a.out, a.seed, a.overwrite) and None)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``refine`` command."""
    flags = {k: getattr(args, k) for k in ("input", "gold", "out", "loss", "lam", "iterations", "select", "combine", "fallback", "seed", "overwrite")}
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
