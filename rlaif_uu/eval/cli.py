"""``rlaif-uu eval`` (evaluate a model on safety suites) and ``rlaif-uu eval compare A B``.

Examples::

    rlaif-uu eval --model smollm2-135m-instruct --suites harmbench,overrefusal --out runs/eval/before --limit 20
    rlaif-uu eval --model runs/align/policy --suites all --out runs/eval/after \\
        --judge transformers:model=qwen2.5-coder-1.5b-judge --reward runs/reward/model
    rlaif-uu eval compare runs/eval/before runs/eval/after --out runs/eval/compare
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from rlaif_uu.eval.config import EvalConfig
from rlaif_uu.eval.degeneration import DegenerationThresholds
from rlaif_uu.eval.suites import ALIASES, builtin_suites, load_suite_file
from rlaif_uu.label.config import parse_judge_spec

GEN_FLAGS = ("backend", "temperature", "top_p", "max_new_tokens", "seed", "batch_size", "system_prompt", "base_url",
             "api_key_env", "concurrency")


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Register ``eval`` and its ``compare`` sub-verb (``rlaif-uu eval compare A B``) on the main parser."""
    p = subparsers.add_parser(
        "eval", parents=[common], help="benchmark a model's safety on suites (harmful compliance, over-refusal) with CIs",
        description="Generate completions for safety suites (cached), score them (refusal rules, judges, reward model), "
        "and write report.json/.md/.png with bootstrap 95% CIs and scorer agreement. Compare two reports with "
        "`rlaif-uu eval compare BEFORE AFTER`. Settings: defaults < --config YAML < flags < dotted overrides "
        "(e.g. generation.top_p=0.9).")
    p.add_argument("--model", help="asset alias, local folder, hub id, LoRA adapter folder, or served model name (openai)")
    p.add_argument("--suites", action="append", help="comma-separated suite names or YAML paths, or 'all' (default)")
    p.add_argument("--out", help="report folder")
    p.add_argument("--limit", type=int, help="a fixed seeded subset of N prompts per suite (quick look)")
    p.add_argument("--limit-seed", type=int, help="seed of the --limit subset (default 0)")
    p.add_argument("--backend", choices=("transformers", "vllm", "openai"), help="generation backend (default transformers)")
    p.add_argument("--temperature", type=float, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float)
    p.add_argument("--max-new-tokens", type=int, help="default 128")
    p.add_argument("--seed", type=int, help="sampling seed (default 0)")
    p.add_argument("--batch-size", type=int, help="prompts per generate call (default 16)")
    p.add_argument("--system-prompt", help="a system turn before each prompt")
    p.add_argument("--base-url", help="openai backend: API root, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", help="openai backend: variable holding the key (default OPENAI_API_KEY)")
    p.add_argument("--concurrency", type=int, help="openai backend: requests in flight")
    p.add_argument("--judge", action="append", dest="judges", metavar="SPEC",
                   help="a judge scorer KIND[:key=value,...] as in `rlaif-uu label`; repeatable")
    p.add_argument("--reward", help="exported reward model folder (scorer)")
    p.add_argument("--refusal-classifier", metavar="ENCODER",
                   help="add a zero-shot refusal classifier on this encoder (e.g. all-minilm-l6-v2) to the refusal rules")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples per CI (default 2000)")
    p.add_argument("--cache", help="generation cache file (default: <asset cache>/eval-generations.sqlite)")
    p.add_argument("--judge-cache", help="verdict cache file (default: <asset cache>/judge-cache.sqlite)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--config", help="YAML file of settings")
    p.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    p.add_argument("--list-suites", action="store_true", help="list the built-in suites and exit")
    p.add_argument("overrides", nargs="*", help="dotted key=value overrides")
    p.set_defaults(func=run)

    c = subparsers.add_parser("eval-compare", parents=[common], prog="rlaif-uu eval compare", help="compare two eval reports (also: eval compare)",
                              description="Side-by-side table and chart of two `rlaif-uu eval` reports with CIs and the change per "
                              "metric; refuses reports made with different suite versions unless --allow-version-mismatch.")
    c.add_argument("before", help="report folder of the model before")
    c.add_argument("after", help="report folder of the model after")
    c.add_argument("--out", help="output folder (default: AFTER/compare)")
    c.add_argument("--allow-version-mismatch", action="store_true",
                   help="compare anyway when suite versions differ (a loud warning names them)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    c.add_argument("--max-seq-rep-rise", type=float, metavar="X",
                   help="DEGENERATION flag when benign seq_rep_3 rises by more than X (default 0.10)")
    c.add_argument("--min-length-ratio", type=float, metavar="R",
                   help="DEGENERATION flag when the mean benign answer length falls below R x before (default 0.5)")
    c.add_argument("--max-duplicate-rise", type=float, metavar="X",
                   help="DEGENERATION flag when the benign duplicate_answer_rate rises by more than X (default 0.20)")
    c.set_defaults(func=run_compare)


def _list_suites() -> int:
    for name, path in builtin_suites().items():
        s = load_suite_file(path)
        print(f"{name:<16} v{s.version:<3} {s.kind:<8} {s.description}")
    print("aliases: " + ", ".join(f"{a} -> {t}" for a, t in ALIASES.items()))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the parsed ``eval`` command."""
    from rlaif_uu.eval.run import run_eval

    if args.list_suites:
        return _list_suites()
    gen = {k: getattr(args, k) for k in GEN_FLAGS if getattr(args, k) is not None}
    flags: dict[str, Any] = {k: getattr(args, k) for k in ("model", "out", "limit", "limit_seed", "reward", "refusal_classifier", "bootstrap", "cache",
                                                           "judge_cache", "threads", "overwrite", "progress")}
    flags["suites"] = [s for raw in args.suites for s in raw.split(",") if s.strip()] if args.suites else None
    if gen:
        flags["generation"] = gen
    if args.judges:
        flags["judges"] = [parse_judge_spec(s) for s in args.judges]
    cfg = load_config(EvalConfig, args.config, flags, args.overrides)
    out = run_eval(cfg, command=shlex.join(["rlaif-uu", *sys.argv[1:]]) if sys.argv[1:2] == ["eval"] else None)
    print((out / "report.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/report.json, report.md, report.png and rows/")
    return 0


def run_compare(args: argparse.Namespace) -> int:
    """Run the parsed ``eval compare`` command."""
    from rlaif_uu.eval.compare import compare_reports

    if args.before == args.after:
        raise UserError("eval compare: BEFORE and AFTER are the same folder")
    given = {k: getattr(args, k) for k in ("max_seq_rep_rise", "min_length_ratio", "max_duplicate_rise") if getattr(args, k) is not None}
    out = compare_reports(args.before, args.after, args.out, allow_version_mismatch=args.allow_version_mismatch,
                          overwrite=args.overwrite, thresholds=DegenerationThresholds(**given))
    print((out / "compare.md").read_text(encoding="utf-8"))
    print(f"wrote {out}/compare.json, compare.md, compare.png")
    return 0
