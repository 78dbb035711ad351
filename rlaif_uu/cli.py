"""The ``rlaif-uu`` command line: one verb per pipeline stage."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from rlaif_uu import __version__, assets
from rlaif_uu.align import cli as align_cli
from rlaif_uu.errors import UserError
from rlaif_uu.eval import cli as eval_cli
from rlaif_uu.label import cli as label_cli
from rlaif_uu.refine import cli as refine_cli
from rlaif_uu.run import cli as run_cli


def common_options() -> argparse.ArgumentParser:
    """The options every verb takes: ``--no-progress`` and ``--verbose``."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--no-progress", action="store_false", dest="progress", default=None,
                        help="no progress bars at all (rlaif-uu's, transformers' weight loading, the hub's)")
    common.add_argument("--verbose", action="store_true",
                        help="show third-party warnings and info logs (transformers, TRL, torch, PEFT); hidden by default")
    return common


def silence_progress() -> None:
    """Turn every tqdm bar off, whoever opens it (tqdm.auto and transformers' wrapper subclass tqdm.std.tqdm)."""
    import functools

    import tqdm.std

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    tqdm.std.tqdm.__init__ = functools.partialmethod(tqdm.std.tqdm.__init__, disable=True)  # type: ignore[method-assign]


def quiet_third_party() -> None:
    """Keep the libraries' repeated deprecation notices, load reports and info logs off a user's terminal.

    Only warnings attributed to other packages are hidden: one that a warning's stack level pins on an
    rlaif_uu module still shows.
    """
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read when transformers is imported
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!rlaif_uu(\.|$))")
    for name in ("transformers", "trl", "peft", "accelerate", "torch", "datasets", "vllm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:
        sys.modules["transformers"].logging.set_verbosity_error()


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every verb registered."""
    from rlaif_uu.reward import cli as reward_cli

    parser = argparse.ArgumentParser(
        prog="rlaif-uu",
        description="RLAIF safety alignment from noisy LLM-judge labels: "
        "label -> refine -> reward -> align -> eval. Run `rlaif-uu VERB --help` for each verb.",
    )
    parser.add_argument("--version", action="version", version=f"rlaif-uu {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    common = common_options()
    for verb in (label_cli, refine_cli, eval_cli, reward_cli, align_cli, run_cli):
        verb.add_parser(sub, common)
    assets.add_assets_parser(sub, common).set_defaults(func=assets.run_assets)
    return parser


# Two-word verbs and the verbs they are registered as: argparse cannot give `eval` or `refine`, whose free
# key=value overrides are positionals, an optional sub-verb, so these spellings are mapped before parsing.
SUB_VERBS = {("eval", "compare"): "eval-compare", ("refine", "sample-gold"): "sample-gold"}


def main(argv: list[str] | None = None) -> int:
    """Entry point; a :class:`UserError` becomes one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if tuple(argv[:2]) in SUB_VERBS:
        argv = [SUB_VERBS[tuple(argv[:2])], *argv[2:]]  # type: ignore[index]
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
    if getattr(args, "progress", None) is False:
        silence_progress()
    if not getattr(args, "verbose", False):
        quiet_third_party()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"rlaif-uu {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlaif-uu {args.verb}: interrupted; nothing partial was written", file=sys.stderr)
        return 130
