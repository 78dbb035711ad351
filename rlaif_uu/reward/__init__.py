"""Reward stage: export a refined classifier as a one-logit, higher-is-safer reward model and use it in TRL."""

from __future__ import annotations

from typing import Any

__all__ = ["SafetyReward", "load_reward_metadata"]


def __getattr__(name: str) -> Any:  # torch and transformers load on first use, not when the CLI starts
    if name == "SafetyReward":
        from rlaif_uu.reward.safety_reward import SafetyReward

        return SafetyReward
    if name == "load_reward_metadata":
        from rlaif_uu.reward.metadata import load_reward_metadata

        return load_reward_metadata
    raise AttributeError(name)
