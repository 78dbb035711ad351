"""``rlaif-uu reward export``: parse the command line and call :func:`rlaif_uu.reward.export.run_export`."""

from __future__ import annotations

import argparse
from typing import Any

from rlaif_uu.config import load_config
from rlaif_uu.reward.config import ExportConfig
from rlaif_uu.reward.export import run_export


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``reward`` (with ``export``) on the main parser."""
    p = subparsers.add_parser("reward", parents=[common], help="export a refined classifier as a reward model TRL can load",
                              description="Reward-model tools. `rlaif-uu reward export --help` for details.")
    sub = p.add_subparsers(dest="reward_verb", metavar="ACTION")
    e = sub.add_parser(
        "export", parents=[common], help="write a one-logit, higher-is-safer HF folder from `rlaif-uu refine --out`",
        description="Export a refined classifier as a reward model: loads with AutoModelForSequenceClassification "
        "(no trust_remote_code), one logit = log-odds of safe, chat template reproducing the training text, "
        "temperature fitted on the gold labels, within-prompt pairwise accuracy on held-out probe prompts "
        "(pairwise.enabled=false skips it), metadata + model card. A frozen-encoder head is distilled into a "
        "stock sequence classifier on the same encoder. Settings: defaults < --config YAML < flags < dotted overrides.",
    )
    e.add_argument("--from", dest="source", help="the refine --out folder (or its classifier/ folder)")
    e.add_argument("--out", help="reward folder to write")
    e.add_argument("--gold", help="gold rows for the calibration temperature (default: the refine run's gold)")
    e.add_argument("--texts", help="corpus to distil a frozen-encoder head on (default: FROM/refined.jsonl)")
    e.add_argument("--distill-epochs", type=int, help="distillation epochs for a frozen-encoder head (default 3)")
    e.add_argument("--seed", type=int, help="seed (default 0)")
    e.add_argument("--config", help="YAML file of settings")
    e.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    e.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. distill_lr=5e-5")
    e.set_defaults(func=lambda a: run_export(load_config(
        ExportConfig, a.config,
        {k: getattr(a, k) for k in ("source", "out", "gold", "texts", "distill_epochs", "seed", "overwrite")},
        a.overrides)))
    p.set_defaults(func=lambda a: p.print_help() or 2)
