"""What every trainer builds from an :class:`AlignConfig`: the policy's load settings, the PEFT config, the reward functions."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

import torch

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.prompts import benign_texts
from rlaif_uu.assets import resolve_model
from rlaif_uu.errors import UserError
from rlaif_uu.reward import SafetyReward
from rlaif_uu.reward.rule_reward import RULES, RefusalRuleReward


def under_deepspeed() -> bool:
    """Whether ``accelerate launch`` started this process with a DeepSpeed config."""
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"


def _import_callable(spec: str) -> Callable[..., list[float]]:
    module, _, name = spec.partition(":")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UserError(f"extra_rewards: cannot import '{spec}' (use 'package.module:function'): {exc}") from None
    if not callable(fn):
        raise UserError(f"extra_rewards: '{spec}' is not callable")
    return fn


def reward_functions(cfg: AlignConfig, dataset: Any) -> tuple[list[Any], list[float]]:
    """The safety reward (with its optional penalties) and the extra rewards, with their weights.

    ``cfg.reward == "rules"`` trains on the refusal rules themselves (:class:`RefusalRuleReward`).
    """
    safety: Any = RefusalRuleReward() if cfg.reward == RULES else SafetyReward(
        cfg.reward, output=cfg.reward_output, length_penalty=cfg.length_penalty, length_free_words=cfg.length_free_words,
        benign_prompts=benign_texts(dataset) if cfg.benign_refusal_penalty else None,
        benign_refusal_penalty=cfg.benign_refusal_penalty,
    )
    funcs: list[Any] = [safety]
    weights = [cfg.reward_weight]
    for spec, weight in cfg.extra_rewards.items():
        funcs.append(_import_callable(spec))
        weights.append(float(weight))
    return funcs, weights


def policy_init_kwargs(cfg: AlignConfig) -> dict[str, Any]:
    """``from_pretrained`` kwargs of the policy: dtype, and NF4 quantisation for QLoRA."""
    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if bf16(cfg) else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": cfg.trust_remote_code}
    ref = resolve_model(cfg.policy)
    if ref.gguf_file:
        kwargs["gguf_file"] = ref.gguf_file
    if cfg.peft.kind == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
        )
        if cuda:
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    return kwargs


def bf16(cfg: AlignConfig) -> bool:
    if cfg.bf16 is not None:
        return cfg.bf16
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def peft_config(cfg: AlignConfig) -> Any:
    """A peft ``LoraConfig`` for LoRA/QLoRA, else ``None``."""
    if cfg.peft.kind == "none":
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.peft.r, lora_alpha=cfg.peft.alpha, lora_dropout=cfg.peft.dropout,
                      target_modules=cfg.peft.target_modules, task_type="CAUSAL_LM")
