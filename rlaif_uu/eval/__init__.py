"""Safety evaluation: suites, generation (cached), scorers, metrics with bootstrap CIs, reports.

Python API::

    from rlaif_uu.eval import EvalConfig, run_eval, compare_reports
    report_dir = run_eval(EvalConfig(model="smollm2-135m-instruct", out="runs/eval/before", suites=["harmbench"]))
    compare_reports("runs/eval/before", "runs/eval/after", "runs/eval/compare")
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

_EXPORTS = {"EvalConfig": "config", "run_eval": "run", "GenerationConfig": "generation", "compare_reports": "compare"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
