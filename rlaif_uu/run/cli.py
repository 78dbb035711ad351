"""``rlaif-uu run RECIPE.yaml``: the whole pipeline, resumable, one folder per stage."""

from __future__ import annotations

import argparse
from typing import Any

from rlaif_uu.config import load_config
from rlaif_uu.run import STAGES
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.runner import run_recipe


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``run`` on the main parser."""
    p = subparsers.add_parser(
        "run", parents=[common], help="run a recipe end to end: label -> refine -> reward -> eval -> align -> eval -> compare",
        description="Run an end-to-end recipe (recipes/*.yaml). Each stage writes its own folder under the run "
        "folder; manifest.json records status and config hash; a rerun skips finished stages whose config did not "
        f"change. Stages: {', '.join(STAGES)}; with rounds: K each round's stages run under round-<r>/ "
        "(round-1/label, ..., round-1/eval). Example: rlaif-uu run recipes/quickstart.yaml align.steps=80",
    )
    p.add_argument("recipe", help="recipe YAML")
    p.add_argument("--out", help="run folder (default: the recipe's out)")
    p.add_argument("--from", dest="from_stage", metavar="STAGE",
                   help="rerun from this stage on: a stage key (round-2/align) or a kind (align: its first stage)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and check every path, model and suite; run nothing")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. align.steps=10 eval.limit=20")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``run`` command."""
    run_recipe(load_config(RecipeConfig, args.recipe, {"out": args.out}, args.overrides), args.from_stage, args.dry_run)
    return 0
