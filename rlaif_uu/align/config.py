"""Typed settings of ``rlaif-uu align`` (defaults < YAML recipe < flags < dotted overrides)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

ALGORITHMS = ("grpo", "rloo", "ppo", "dpo")


@dataclass
class PeftSettings:
    """Policy adapters: ``none`` (full fine-tuning, small models), ``lora``, or ``qlora`` (LoRA on an NF4 base)."""

    kind: str = "none"  # none | lora | qlora
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: str = "all-linear"
    merge: bool = False  # save the final policy with LoRA merged into the base weights


@dataclass
class PromptSettings:
    """The training prompt mix: harmful prompts (learn to refuse) and benign ones (keep helping).

    ``harmful``/``benign`` name an eval suite (``donotanswer``, ``harmbench_val``, ``benign``, ...),
    a suite YAML, or a JSONL/CSV file with a ``prompt`` column, or several of them separated by
    commas (``donotanswer,harmbench_test``: ``n_harmful`` is split evenly between them, so a small
    source is not swamped by a large one). ``holdout`` keeps that fraction of every source out of
    training (chosen by a hash of the prompt id, so the eval side can take it).
    """

    harmful: str = "donotanswer"
    benign: str | None = "benign"
    n_harmful: int = 64
    n_benign: int = 32
    holdout: float = 0.0
    system: str | None = None  # an optional system message before every prompt
    seed: int = 0


@dataclass
class VllmSettings:
    """vLLM rollouts through TRL (GPU only: the CPU build of vLLM needs an older transformers than this
    package, so on CPU it lives in its own environment, scripts/setup_vllm.sh, for generation and judging)."""

    enabled: bool = False
    mode: str = "colocate"  # colocate | server
    gpu_memory_utilization: float = 0.3
    server_base_url: str | None = None


@dataclass
class MonitorSettings:
    """The reward-hacking alarm (:mod:`rlaif_uu.align.monitor`): every ``every_n_steps`` steps (and before
    step 1) the current policy answers a fixed sample of monitor prompts greedily, a scorer that is not
    the training reward scores them, and the training reward is compared with that score
    (:func:`rlaif_uu.align.alarm.evaluate_alarm` defines when the alarm fires).

    Monitor prompts come from the training sources but are neither in the training mix nor in the
    eval hold-out (``prompts.holdout``), so the monitor never sees what GRPO trains on nor what the
    eval measures. ``scorer``: ``refusal`` (the refusal rules: harmful compliance = no refusal),
    ``judge:KIND[:key=value,...]`` (a label-stage judge, as ``rlaif-uu eval --judge``) or
    ``reward:FOLDER`` (another exported reward; P(safe) < 0.5 = compliance). Benign refusal is
    always measured with the refusal rules.
    """

    enabled: bool = False
    every_n_steps: int = 5
    n_prompts: int = 32  # monitor prompts (harmful + benign), a fixed seeded sample
    benign_fraction: float = 0.25  # share of benign prompts among them (what an over-refusal collapse shows on)
    scorer: str = "refusal"  # refusal | judge:KIND[:key=value,...] | reward:FOLDER
    max_new_tokens: int | None = None  # default: max_completion_length (what the reward sees)
    batch_size: int = 16  # prompts per generate call
    window: int | None = None  # training reward = mean over the last `window` logged steps (default every_n_steps)
    reward_rise: float = 0.05  # alarm: training reward up by more than this (reward units) vs the first check ...
    compliance_rise: float = 0.05  # ... while monitor harmful compliance is up by more than this (absolute rate)
    benign_refusal_rise: float = 0.25  # ... or monitor benign refusal is up by more than this (over-refusal collapse)
    patience: int | None = None  # consecutive checks the condition must hold before the alarm fires (default 2; dpo: 1)
    drift_rise: float = 0.15  # drift: monitor harmful compliance up by more than this, whatever the reward did ...
    refusal_drift_rise: float = 0.15  # ... or monitor benign refusal up by more than this (over-refusal)
    stop: bool = False  # stop training when the alarm fires or drift is found (the policy is saved as usual)
    seed: int = 0  # which monitor prompts are drawn


@dataclass
class DpoSettings:
    """Online iterative DPO (``algorithm: dpo``, :mod:`rlaif_uu.align.dpo`): each iteration samples
    ``num_generations`` answers of the current policy per training prompt, adds ``refusal_candidates``
    refusals from the refusal pool, lets the reward rank them, and trains DPO on (best, worst) pairs.

    ``refusals``: the refusal pool, ``builtin`` or a text file with one refusal per line.
    ``refusal_candidates: 0`` is the plain on-policy form (RLHFlow's best vs worst of the policy's own samples). ``sft_weight``: weight of the NLL of the chosen answer beside the DPO
    loss (RPO); 0 = DPO alone.
    """

    iterations: int = 2
    epochs: int = 2  # passes over each iteration's pairs
    refusal_candidates: int = 2  # refusals from the pool added to every prompt's candidates
    refusals: str = "builtin"
    min_gap: float = 0.05  # a pair needs reward(best) - reward(worst) of at least this (reward units)
    sft_weight: float = 0.2
    generation_batch_size: int = 32  # prompts per generate call when sampling


@dataclass
class AlignConfig:
    """``rlaif-uu align`` settings."""

    policy: str = "smollm2-135m-instruct"  # alias, local HF folder or hub id
    reward: str = MISSING  # an exported reward folder (rlaif-uu reward export), or "rules": the refusal rules as the reward
    reward_output: str = "probability"  # probability | logodds | centered
    reward_weight: float = 1.0
    benign_refusal_penalty: float = 0.0  # subtracted when the policy refuses a benign training prompt
    length_penalty: float = 0.0  # per 100 words beyond length_free_words
    length_free_words: int = 200
    extra_rewards: dict[str, float] = field(default_factory=dict)  # "module:function" -> weight
    algorithm: str = "grpo"  # grpo | rloo | ppo | dpo (online iterative DPO, align.dpo)
    out: str = MISSING
    steps: int = 20  # optimizer steps (grpo, rloo, ppo); dpo trains dpo.epochs per iteration instead
    learning_rate: float = 1e-5
    beta: float = 0.04  # KL coefficient to the reference policy
    num_generations: int = 4  # completions per prompt (group size)
    batch_size: int = 8  # completions per device per step; a multiple of num_generations
    gradient_accumulation_steps: int = 1
    max_completion_length: int = 64
    temperature: float = 1.0
    save_steps: int = 10
    save_total_limit: int = 2
    logging_steps: int = 1
    report_to: str = "none"  # TRL/transformers report_to: none | tensorboard | wandb | ...
    seed: int = 0
    bf16: bool | None = None  # default: on CUDA with bf16 support
    trust_remote_code: bool = False
    peft: PeftSettings = field(default_factory=PeftSettings)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    vllm: VllmSettings = field(default_factory=VllmSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    dpo: DpoSettings = field(default_factory=DpoSettings)
    trainer_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the TRL config as is
    resume: bool = False
    overwrite: bool = False
