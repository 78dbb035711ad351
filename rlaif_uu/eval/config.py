"""Settings of the eval stage (``rlaif-uu eval``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from rlaif_uu.eval.generation import GenerationConfig
from rlaif_uu.eval.metrics import B_DEFAULT
from rlaif_uu.label.config import JUDGE_TAG


@dataclass
class EvalConfig:
    """``rlaif-uu eval`` settings (dataclass defaults < YAML < flags < dotted overrides)."""

    model: str = MISSING  # asset alias, local folder, hub id, LoRA adapter folder, or served model name (openai)
    out: str = MISSING  # report folder
    suites: list[str] = field(default_factory=lambda: ["all"])  # built-in names, aliases, YAML paths, or all
    limit: int | None = None  # a fixed seeded subset of this many prompts per suite
    limit_seed: int = 0
    holdout: dict[str, float] = field(default_factory=dict)  # suite -> fraction: only its prompts in align's hash hold-out
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    judges: list[Any] = field(default_factory=list, metadata={"tagged": JUDGE_TAG})  # JudgeConfig items: judges scoring the completions
    reward: str | None = None  # exported reward model folder
    refusal_classifier: str | None = None  # encoder for a zero-shot refusal classifier beside the rules (all-minilm-l6-v2)
    bootstrap: int = B_DEFAULT  # bootstrap resamples per interval
    bootstrap_seed: int = 0
    cache: str | None = None  # generation cache (default: <asset cache>/eval-generations.sqlite)
    judge_cache: str | None = None  # verdict cache (default: <asset cache>/judge-cache.sqlite)
    threads: int | None = None  # torch CPU threads (None: torch's default)
    overwrite: bool = False
    progress: bool = True
