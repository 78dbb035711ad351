"""``rlaif-uu label``: parse the command line and call :func:`rlaif_uu.label.run.run_label`."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from rlaif_uu.config import load_config
from rlaif_uu.label.config import AGGREGATES, KINDS, LabelConfig, parse_judge_spec
from rlaif_uu.label.run import run_label


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``label`` on the main parser."""
    p = subparsers.add_parser(
        "label", parents=[common],
        help="judge (prompt, response) rows with LLM and cheap judges; write judge_label/judge_score",
        description="Label a corpus with one or more judges (cached, resumable). Settings: dataclass defaults < "
        "--config YAML < flags < dotted overrides (e.g. aggregate=mean). Judges: --judge KIND[:key=value,...], "
        f"KIND one of {', '.join(KINDS)}; e.g. --judge rules --judge openai:model=M,base_url=http://127.0.0.1:8000/v1 "
        "(each kind's own settings: docs/label.md).",
    )
    p.add_argument("--input", help="JSONL/CSV/Parquet/saved-dataset with prompt (and response)")
    p.add_argument("--out", help="output file (.jsonl, .csv or .parquet)")
    p.add_argument("--judge", action="append", dest="judges", metavar="SPEC", help="a judge, KIND[:key=value,...]; repeatable")
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--aggregate", choices=AGGREGATES, help="how judges combine (default majority)")
    p.add_argument("--cache", help="verdict cache file (default: <asset cache>/judge-cache.sqlite, shared with eval/judge_corpus.py)")
    p.add_argument("--no-cache", action="store_true", default=None, help="judge every row, store nothing")
    p.add_argument("--prompt-only", action="store_true", default=None, help="judge prompts alone")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``label`` command."""
    for name in ("httpx", "httpx2"):  # one INFO line per request (with the URL) is noise beside the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    flags = {k: getattr(args, k) for k in ("input", "out", "aggregate", "cache", "no_cache", "prompt_only", "progress", "overwrite")}
    if args.judges:
        flags["judges"] = [parse_judge_spec(s) for s in args.judges]
    run_label(load_config(LabelConfig, args.config, flags, args.overrides))
    return 0
