"""The ``rlaif-uu`` command line: one verb per pipeline stage."""

from __future__ import annotations

import argparse
import logging
import sys

from rlaif_uu import __version__
from rlaif_uu.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every verb registered."""
    from rlaif_uu import assets
    from rlaif_uu.align import cli as align_cli
    from rlaif_uu.evaluation import cli as eval_cli
    from rlaif_uu.judge import cli as label_cli
    from rlaif_uu.pipeline import cli as run_cli
    from rlaif_uu.refine import cli as refine_cli
    from rlaif_uu.reward import cli as reward_cli

    parser = argparse.ArgumentParser(
        prog="rlaif-uu",
        description="RLAIF safety alignment from noisy LLM-judge labels: "
        "label -> refine -> reward -> align -> eval. Run `rlaif-uu VERB --help` for each verb.",
    )
    parser.add_argument("--version", action="version", version=f"rlaif-uu {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    label_cli.add_parser(sub)
    refine_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    reward_cli.add_parser(sub)
    align_cli.add_parser(sub)
    run_cli.add_parser(sub)
    assets.add_assets_parser(sub).set_defaults(func=assets.run_assets)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; a :class:`UserError` becomes one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["refine", "sample-gold"]:
        argv = argv[1:]
    if argv[:2] == ["eval", "compare"]:
        argv = ["eval-compare", *argv[2:]]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # one "Retrying request" line per request in flight would bury the one error line that matters (it names the server)
    logging.getLogger("openai").setLevel(logging.WARNING)
    # bitsandbytes warns on import, on CPUs with AVX512-BF16, that an optional hub kernel is missing; the fallback works
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # dotted overrides may come before or after the flags (argparse stops a nargs="*" at the first flag)
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*(args.overrides or []), *extra]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"rlaif-uu {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlaif-uu {args.verb}: interrupted; nothing partial was written", file=sys.stderr)
        return 130
