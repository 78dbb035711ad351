"""PPO for ``rlaif-uu align algorithm=ppo``: TRL 1.12's ``trl.experimental.ppo.PPOTrainer``.

PPO left TRL in 1.13, so it runs in an environment of its own with ``trl==1.12.0``
(``bash scripts/tier_ppo.sh`` builds ``.venv-ppo``).

How TRL 1.12 scores a rollout (``trl.experimental.utils.get_reward``): it feeds the
*policy's* token ids straight into the reward model's backbone
(``getattr(model, model.base_model_prefix)``), applies ``model.score`` to every
position's last hidden state and keeps the value at the last non-pad token. An exported
reward folder does not fit that contract: it has its own tokenizer (policy ids would
index the wrong vocabulary), its own text format (the folder's chat template renders
``User: ...\\nAssistant: ...``), and an encoder reward pools the first token through a
``classifier`` head, not a per-token ``score``. :class:`TextLevelReward` is the adapter:
it decodes each (prompt, response) back to text with the policy tokenizer and scores it
with :class:`~rlaif_uu.reward.SafetyReward` (the same reward, penalties and extra rewards
GRPO/RLOO use), then hands TRL that score at every position, so whichever token TRL
reads, it reads the reward of the decoded text.

The value model is the policy's backbone with a fresh one-logit ``score`` head
(``AutoModelForSequenceClassification(policy, num_labels=1)``): it reads policy ids, so
it must share the policy's tokenizer.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from rlaif_uu.align.components import peft_config, policy_init_kwargs, reward_functions, under_deepspeed
from rlaif_uu.align.config import AlignConfig
from rlaif_uu.assets import resolve_model
from rlaif_uu.errors import UserError

INSTALL_HINT = ("algorithm=ppo needs trl==1.12.0 (TRL removed PPOTrainer in 1.13): install it in its own environment "
                "(pip install trl==1.12.0) or run `bash scripts/tier_ppo.sh`, which builds .venv-ppo")
Messages = list[dict[str, Any]]
RewardFn = Callable[[list[Messages], list[Messages]], list[float]]


def ppo_module() -> Any:
    """``trl.experimental.ppo`` of TRL 1.12.

    Raises:
        UserError: the installed TRL has no PPO (1.13 or later, or TRL missing).
    """
    try:
        from trl.experimental import ppo
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ppo


def check_ppo_config(cfg: AlignConfig) -> None:
    """PPO-specific checks, run before anything is written.

    Raises:
        UserError: no TRL PPO, a batch larger than the prompt mix, or a setting TRL 1.12's PPO
            cannot honour (resume, vLLM, DeepSpeed).
    """
    ppo_module()
    if cfg.resume:
        raise UserError("--resume: TRL 1.12's PPOTrainer.train() cannot resume from a checkpoint; start over "
                        "(--overwrite), or use algorithm=grpo/rloo for resumable runs")
    if cfg.vllm.enabled:
        raise UserError("vllm.enabled=true: TRL 1.12's PPOTrainer generates with transformers only; "
                        "set vllm.enabled=false or use algorithm=grpo")
    rollouts = cfg.batch_size * cfg.gradient_accumulation_steps
    prompts = cfg.prompts.n_harmful + (cfg.prompts.n_benign if cfg.prompts.benign else 0)
    if prompts < rollouts:
        raise UserError(f"batch_size*gradient_accumulation_steps={rollouts} exceeds the {prompts} training prompts; "
                        "PPO drops incomplete batches: lower batch_size or raise prompts.n_harmful/n_benign")
    if under_deepspeed():
        raise UserError("algorithm=ppo under DeepSpeed is not supported: TRL wraps the reward model in a DeepSpeed "
                        "engine, and rlaif-uu's PPO reward scores decoded text; use algorithm=grpo/rloo with DeepSpeed")


def token_ids(encoded: Any) -> list[int]:
    """The ids of an ``apply_chat_template(..., tokenize=True)`` result (a list or a ``BatchEncoding``)."""
    return list(encoded["input_ids"] if isinstance(encoded, Mapping) else encoded)


def choose_pad_token(tokenizer: Any, used_ids: set[int]) -> bool:
    """Give ``tokenizer`` a pad token that is not EOS and never occurs in the prompts.

    TRL's PPO finds padding by ``ids == pad_token_id``; SmolLM2 pads with ``<|im_end|>``,
    which also ends every chat turn, so the prompts would lose their turn ends. An existing
    special token that the prompts never use (SmolLM2: ``<|endoftext|>``) is taken first.

    Returns:
        True when a new ``<|pad|>`` token had to be added (the caller resizes the embeddings).
    """
    candidates = [tokenizer.pad_token, tokenizer.unk_token, *tokenizer.all_special_tokens]
    for token in candidates:
        if token is None:
            continue
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is not None and token_id != tokenizer.eos_token_id and token_id not in used_ids:
            tokenizer.pad_token = token
            return False
    tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return True


class _DecodedTextScorer(nn.Module):
    """The "backbone" TRL calls: policy ids -> decoded (prompt, completion) -> reward at every position."""

    def __init__(self, tokenizer: Any, prompts: Mapping[tuple[int, ...], Messages], reward_fn: RewardFn) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.reward_fn = reward_fn
        self.by_length: dict[int, dict[tuple[int, ...], Messages]] = {}
        for ids, messages in prompts.items():
            self.by_length.setdefault(len(ids), {})[ids] = messages
        self.lengths = sorted(self.by_length, reverse=True)

    def split(self, row: Sequence[int], mask: Sequence[bool]) -> tuple[Messages, str]:
        """The prompt messages and the decoded completion of one left-padded query + response row."""
        start = mask.index(True) if True in mask else len(mask)
        for length in self.lengths:
            messages = self.by_length[length].get(tuple(row[start : start + length]))
            if messages is not None:
                tail = mask[start + length :]
                end = start + length + (tail.index(False) if False in tail else len(tail))
                return messages, self.tokenizer.decode(row[start + length : end], skip_special_tokens=True)
        raise RuntimeError("PPO reward: a rollout does not start with any training prompt (tokenizer/padding mismatch)")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutput

        pairs = [self.split(row, mask) for row, mask in zip(input_ids.tolist(), attention_mask.bool().tolist())]
        prompts = [p for p, _ in pairs]
        completions = [[{"role": "assistant", "content": c}] for _, c in pairs]
        scores = torch.tensor(self.reward_fn(prompts, completions), dtype=torch.float32, device=input_ids.device)
        hidden = scores.view(-1, 1, 1).expand(-1, input_ids.shape[1], 1)
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=(hidden,))


class TextLevelReward(nn.Module):
    """A reward "model" in the shape TRL 1.12's PPO expects, scoring decoded text.

    TRL calls ``model.score(getattr(model, model.base_model_prefix)(ids, ...).hidden_states[-1])``
    and reads one position per row; here every position holds the row's reward.

    Args:
        tokenizer: the policy tokenizer (its pad token must not occur inside prompts).
        prompts: token ids of every training query (chat template with generation prompt)
            -> its chat messages.
        reward_fn: ``(prompt messages, completion messages) -> rewards`` (higher = safer).
    """

    base_model_prefix = "scorer"

    def __init__(self, tokenizer: Any, prompts: Mapping[tuple[int, ...], Messages], reward_fn: RewardFn) -> None:
        super().__init__()
        self.scorer = _DecodedTextScorer(tokenizer, prompts, reward_fn)
        self.score = nn.Identity()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kw: Any) -> torch.Tensor:
        """The reward of each row (``[batch]``)."""
        return self.scorer(input_ids, attention_mask).last_hidden_state[:, -1, 0]


def weighted_reward(funcs: Sequence[Callable[..., list[float | None]]], weights: Sequence[float]) -> RewardFn:
    """``sum_i w_i f_i(prompts, completions)``, an abstaining ``None`` counting as 0 (TRL GRPO's ``nansum``)."""

    def reward(prompts: list[Messages], completions: list[Messages]) -> list[float]:
        total = [0.0] * len(prompts)
        for fn, weight in zip(funcs, weights):
            for i, value in enumerate(fn(prompts, completions)):
                if value is not None and not math.isnan(value):
                    total[i] += weight * float(value)
        return total

    return reward


def _value_model(path: str, kwargs: dict[str, Any], pad_token_id: int, vocab: int) -> Any:
    from transformers import AutoModelForSequenceClassification

    kwargs = {k: v for k, v in kwargs.items() if k not in ("quantization_config", "device_map")}
    value = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **kwargs)
    if not isinstance(getattr(value, "score", None), nn.Module) or not hasattr(value, value.base_model_prefix):
        raise UserError(f"{path}: {type(value).__name__} has no per-token `score` head; TRL 1.12's PPO value model "
                        "needs a decoder-only policy (Llama, Qwen, Mistral, GPT-2, ...)")
    if value.get_input_embeddings().num_embeddings < vocab:
        value.resize_token_embeddings(vocab)
    value.config.pad_token_id = pad_token_id
    return value


def build_ppo_trainer(cfg: AlignConfig, dataset: Any, output_dir: str) -> Any:
    """A TRL 1.12 ``PPOTrainer`` on the policy, its value model, the reward and the tokenized prompts.

    The reference policy is a frozen copy of the policy (with LoRA: the adapter-free base), the
    value model the policy's backbone with a new head, the reward a :class:`TextLevelReward`.
    ``steps`` is the number of PPO updates (rollout batches); each does ``num_ppo_epochs``
    (``trainer_kwargs``, TRL default 4) passes over ``batch_size * gradient_accumulation_steps``
    rollouts per process. ``beta`` is TRL's ``kl_coef``; ``num_generations`` does not apply.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer


    ppo = ppo_module()  # build_trainer ran check_config (and check_ppo_config) first
    # accelerate logs an INFO line on every gather_for_metrics of TRL's PPO (13 per step)
    logging.getLogger("accelerate.accelerator").setLevel(logging.WARNING)
    ref = resolve_model(cfg.policy)
    tokenizer = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=cfg.trust_remote_code, padding_side="left")
    prompt_ids = [token_ids(tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True))
                  for row in dataset]
    added_pad = choose_pad_token(tokenizer, {i for ids in prompt_ids for i in ids})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rollouts = cfg.batch_size * cfg.gradient_accumulation_steps

    init = policy_init_kwargs(cfg)
    policy = AutoModelForCausalLM.from_pretrained(ref.path, **init)
    if added_pad:
        policy.resize_token_embeddings(len(tokenizer))
    policy.generation_config.pad_token_id = tokenizer.pad_token_id
    value = _value_model(ref.path, init, tokenizer.pad_token_id, len(tokenizer))
    funcs, weights = reward_functions(cfg, dataset)
    reward = TextLevelReward(tokenizer, {tuple(ids): row["prompt"] for ids, row in zip(prompt_ids, dataset)},
                             weighted_reward(funcs, weights))

    args: dict[str, Any] = {
        "output_dir": output_dir, "total_episodes": cfg.steps * rollouts * world,
        "per_device_train_batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "learning_rate": cfg.learning_rate, "kl_coef": cfg.beta, "temperature": cfg.temperature,
        "response_length": cfg.max_completion_length, "stop_token": "eos", "num_sample_generations": 0,
        "local_rollout_forward_batch_size": cfg.batch_size, "gradient_checkpointing": False,
        "save_steps": cfg.save_steps, "save_total_limit": cfg.save_total_limit, "logging_steps": cfg.logging_steps,
        "report_to": cfg.report_to, "seed": cfg.seed, "bf16": init["dtype"] == torch.bfloat16,
        "use_cpu": not torch.cuda.is_available(), "sft_model_path": ref.path, "reward_model_path": cfg.reward,
    }
    args.update(cfg.trainer_kwargs)
    try:
        ppo_args = ppo.PPOConfig(**args)
    except TypeError as exc:
        raise UserError(f"trainer_kwargs: {exc}") from None
    train = Dataset.from_dict({"input_ids": prompt_ids})
    return _aligned_trainer_class(ppo.PPOTrainer)(
        args=ppo_args, processing_class=tokenizer, model=policy, ref_model=None, reward_model=reward,
        train_dataset=train, value_model=value, peft_config=peft_config(cfg),
    )


def _aligned_trainer_class(base: type) -> type:
    """``PPOTrainer`` in ``run_align``'s dialect: ``train(resume_from_checkpoint=None)``, ``reward``/``kl`` logged.

    ``reward`` is TRL's ``objective/scores`` (mean total reward of the rollouts), ``kl`` its
    ``objective/kl`` (per-token KL to the reference summed over the response, mean over rollouts).
    Under DDP, TRL 1.12 saves checkpoints and model cards from the DDP wrapper (which has no
    ``config`` and no ``policy``); both run on the unwrapped policy + value model here, and the
    ranks that do not save find the attribute transformers 5.x expects.
    """

    class AlignPPOTrainer(base):  # type: ignore[misc, valid-type]
        # read by transformers 5.x Trainer._save on every rank; TRL 1.12's __init__ never sets it
        is_distributed_loading_by_transformers = False

        def train(self, resume_from_checkpoint: str | None = None) -> None:
            if resume_from_checkpoint:
                raise UserError("TRL 1.12's PPOTrainer cannot resume from a checkpoint; start over with --overwrite")
            super().train()

        @contextmanager
        def _unwrapped(self) -> Iterator[None]:
            wrapped, self.model = self.model, self.accelerator.unwrap_model(self.model)
            try:
                yield
            finally:
                self.model = wrapped

        def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
            with self._unwrapped():
                super().save_model(output_dir, _internal_call)

        def create_model_card(self, *args: Any, **kwargs: Any) -> None:
            with self._unwrapped():
                super().create_model_card(*args, **kwargs)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if "objective/scores" in logs:
                logs = {**logs, "reward": logs["objective/scores"], "kl": logs["objective/kl"]}
            super().log(logs, start_time)

    return AlignPPOTrainer
