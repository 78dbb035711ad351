"""``rlaif-uu align``: RL fine-tuning of a policy against an exported safety reward (TRL)."""

from __future__ import annotations

import argparse
from typing import Any

from rlaif_uu.align.config import ALGORITHMS, AlignConfig
from rlaif_uu.align.run import run_align
from rlaif_uu.config import load_config


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``align`` on the main parser."""
    p = subparsers.add_parser(
        "align", parents=[common],
        help="align a policy against the refined safety reward with TRL (GRPO, RLOO, PPO)",
        description="RL-align a policy against an exported reward (rlaif-uu reward export) on a mix of harmful and "
        "benign prompts. Settings: defaults < --config YAML recipe < flags < dotted overrides, e.g. "
        "`rlaif-uu align --config recipes/align/grpo_cpu.yaml steps=50 peft.kind=lora`. Scale out with "
        "`accelerate launch --config_file recipes/accelerate/zero2.yaml -m rlaif_uu align ...`.",
    )
    p.add_argument("--config", help="YAML recipe")
    p.add_argument("--policy", help="policy model: alias, local HF folder or hub id (default smollm2-135m-instruct)")
    p.add_argument("--reward", help="exported reward folder")
    p.add_argument("--algorithm", choices=ALGORITHMS, help="RL algorithm (default grpo)")
    p.add_argument("--out", help="output folder (checkpoints/, policy/, train_log.json, reward_curve.png)")
    p.add_argument("--steps", type=int, help="optimizer steps (default 20)")
    p.add_argument("--resume", action="store_true", default=None, help="continue from the newest checkpoint in OUT")
    p.add_argument("--overwrite", action="store_true", default=None, help="start over in a non-empty OUT")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. peft.kind=lora beta=0.1")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``align`` command."""
    flags = {k: getattr(args, k) for k in ("policy", "reward", "algorithm", "out", "steps", "resume", "overwrite")}
    run_align(load_config(AlignConfig, args.config, flags, args.overrides))
    return 0
