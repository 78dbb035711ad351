"""Reward stage: export a refined classifier as a one-logit, higher-is-safer reward model and use it in TRL."""

from rlaif_uu.reward.metadata import load_reward_metadata
from rlaif_uu.reward.safety_reward import SafetyReward

__all__ = ["SafetyReward", "load_reward_metadata"]
