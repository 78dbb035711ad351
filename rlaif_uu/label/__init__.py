"""The label stage: judges (rules, embedding, request-aware, transformers, vLLM, OpenAI-compatible) label (prompt, response) rows.

Python API::

    from rlaif_uu.label import LabelConfig, judge_config, run_label, build_judge
    run_label(LabelConfig(input="corpus.jsonl", out="labelled.jsonl", judges=[judge_config("rules")]))
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

_EXPORTS = {"LabelConfig": "config", "JudgeConfig": "config", "judge_config": "config", "run_label": "run", "build_judge": "run"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
