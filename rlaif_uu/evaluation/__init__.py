"""Safety evaluation: suites, generation (cached), scorers, metrics with bootstrap CIs, reports.

Python API::

    from rlaif_uu.evaluation import EvalConfig, run_eval, compare_reports
    report_dir = run_eval(EvalConfig(model="smollm2-135m-instruct", out="runs/eval/before", suites=["harmbench"]))
    compare_reports("runs/eval/before", "runs/eval/after", "runs/eval/compare")
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"EvalConfig": "runner", "run_eval": "runner", "GenerationConfig": "generation", "compare_reports": "compare"}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the public API lazily (the CLI imports this package for every verb)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rlaif_uu.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rlaif_uu.evaluation.{_EXPORTS[name]}"), name)
