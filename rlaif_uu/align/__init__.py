"""The align stage: RL (GRPO, RLOO, PPO) of a policy against an exported reward, with the reward-hacking alarm.

Python API::

    from rlaif_uu.align import AlignConfig, run_align
    run_align(AlignConfig(policy="smollm2-135m-instruct", reward="runs/reward", out="runs/align"))
"""

from __future__ import annotations

from rlaif_uu.lazy import lazy_exports

_EXPORTS = {"AlignConfig": "config", "run_align": "run"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
