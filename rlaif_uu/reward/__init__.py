"""The reward stage: export a refined classifier as a one-logit, higher-is-safer reward model and use it in TRL.

Python API::

    from rlaif_uu.reward import ExportConfig, run_export, SafetyReward, load_reward_metadata
    run_export(ExportConfig(source="runs/refine", out="runs/reward"))
    reward = SafetyReward("runs/reward")   # TRL reward function: (prompts, completions) -> scores
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

_EXPORTS = {"ExportConfig": "config", "run_export": "export", "SafetyReward": "safety_reward", "load_reward_metadata": "metadata"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
