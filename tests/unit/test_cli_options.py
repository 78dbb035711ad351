"""The options every verb takes: --no-progress turns every progress bar off, third-party noise stays hidden unless --verbose."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rlaif_uu.cli import build_parser

VERBS = (["label"], ["refine"], ["sample-gold", "--input", "a", "--out", "b"], ["eval"], ["eval-compare", "a", "b"],
         ["reward", "export"], ["align"], ["run", "r.yaml"], ["assets"])


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v[0])
def test_every_verb_takes_the_common_options(verb: list[str]) -> None:
    args = build_parser().parse_args([*verb, "--no-progress", "--verbose"])
    assert args.progress is False and args.verbose is True
    args = build_parser().parse_args(verb)
    assert args.progress is None and args.verbose is False


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_no_progress_turns_off_bars_opened_through_any_tqdm_entry_point() -> None:
    done = _run("from rlaif_uu.cli import silence_progress\n"
                "from tqdm.auto import tqdm as auto\n"
                "silence_progress()\n"
                "from transformers.utils import logging as hf\n"
                "for bar in (auto(range(3), desc='a'), hf.tqdm(range(3), desc='b')):\n"
                "    list(bar)\n"
                "    assert bar.disable, bar\n")
    assert done.returncode == 0, done.stderr
    assert "a:" not in done.stderr and "b:" not in done.stderr


def test_third_party_warnings_are_hidden_unless_verbose() -> None:
    code = ("import logging, warnings\n"
            "from rlaif_uu.cli import quiet_third_party\n"
            "{}\n"
            "warnings.warn('a deprecated thing', FutureWarning)\n"
            "warnings.warn_explicit('OWN NOTICE', UserWarning, 'run.py', 1, module='rlaif_uu.eval.run')\n"
            "logging.basicConfig()\n"
            "logging.getLogger('transformers.modeling_utils').warning('LOAD REPORT')\n"
            "logging.getLogger('rlaif_uu.align.monitor').warning('ALARM')\n")
    quiet = _run(code.format("quiet_third_party()"))
    assert "deprecated" not in quiet.stderr and "LOAD REPORT" not in quiet.stderr
    assert "ALARM" in quiet.stderr and "OWN NOTICE" in quiet.stderr  # the project's own warnings stay
    verbose = _run(code.format("pass"))
    assert "deprecated" in verbose.stderr and "LOAD REPORT" in verbose.stderr
