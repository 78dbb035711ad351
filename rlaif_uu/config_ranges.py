"""Ranges of every numeric setting, checked in one place when any stage's config is loaded.

A rule is looked up by ``Class.field`` (the dataclass that declares the field), then by the
bare field name (``seed``, ``batch_size``: the same meaning in every stage). A field may also
carry its own rule as ``field(metadata={"range": Range(...)})``, which wins over the table.
Every numeric value, listed or not, must be finite.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlaif_uu.errors import UserError


@dataclass(frozen=True)
class Range:
    """Allowed values: ``low``/``high`` bounds (``None`` = unbounded), open when ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self) -> str:
        """The range in words, e.g. ``>= 1`` or ``in (0, 1]``."""
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"


ANY = Range()
AT_LEAST_0 = Range(0)
AT_LEAST_1 = Range(1)
POSITIVE = Range(0, low_open=True)
UNIT = Range(0, 1)  # a probability or share, ends included
SHARE = Range(0, 1, low_open=True)  # a share of memory: (0, 1]
FRACTION = Range(0, 1, high_open=True)  # a held-out fraction: [0, 1)
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)

RANGES: dict[str, Range] = {
    # the same meaning wherever the name appears
    "seed": AT_LEAST_0, "limit_seed": AT_LEAST_0, "bootstrap_seed": AT_LEAST_0,
    "batch_size": AT_LEAST_1, "concurrency": AT_LEAST_1, "threads": AT_LEAST_1, "max_model_len": AT_LEAST_1,
    "timeout": POSITIVE, "max_retries": AT_LEAST_0, "gpu_memory_utilization": SHARE, "kv_cache_gb": POSITIVE,
    "num_processes": AT_LEAST_1,
    # label / eval judges
    "BaseJudgeConfig.threshold": ANY, "BaseJudgeConfig.harmful_fraction": OPEN_UNIT, "max_field_tokens": AT_LEAST_1,
    # refine
    "RefineConfig.lam": ANY, "RefineConfig.iterations": AT_LEAST_1, "RefineConfig.val_fraction": OPEN_UNIT,
    "RefineConfig.flip_tol": UNIT, "RefineConfig.margin_se": AT_LEAST_0, "RefineConfig.guard_margin_se": AT_LEAST_0,
    "FrozenBackboneConfig.hidden": AT_LEAST_1, "EncoderBackboneConfig.train_layers": AT_LEAST_0, "weight_decay": AT_LEAST_0,
    "BaseBackboneConfig.epochs": AT_LEAST_1, "BaseBackboneConfig.lr": POSITIVE, "BaseBackboneConfig.max_length": AT_LEAST_1,
    "PeftBackboneConfig.lora_r": AT_LEAST_1, "PeftBackboneConfig.lora_alpha": AT_LEAST_1,
    "NeighbourhoodConfig.k": AT_LEAST_1, "NeighbourhoodConfig.certain": UNIT, "NeighbourhoodConfig.two": UNIT,
    "NeighbourhoodConfig.noisy_threshold": UNIT, "NeighbourhoodConfig.checkpoints": AT_LEAST_1,
    "NeighbourhoodConfig.rounds": AT_LEAST_1, "NeighbourhoodConfig.alpha": UNIT,
    "ConfidentConfig.folds": Range(2),
    "ActiveConfig.budget": AT_LEAST_1, "ActiveConfig.batch": AT_LEAST_1, "ActiveConfig.w_uncertainty": AT_LEAST_0,
    "ActiveConfig.w_model_judge": AT_LEAST_0, "ActiveConfig.w_judges": AT_LEAST_0, "ActiveConfig.human_weight": AT_LEAST_1,
    # reward export
    "ExportConfig.distill_epochs": AT_LEAST_1, "ExportConfig.distill_lr": POSITIVE, "ExportConfig.distill_swaps": AT_LEAST_0,
    # align
    "AlignConfig.reward_weight": ANY, "AlignConfig.benign_refusal_penalty": AT_LEAST_0, "AlignConfig.length_penalty": AT_LEAST_0,
    "AlignConfig.length_free_words": AT_LEAST_0, "AlignConfig.extra_rewards": ANY, "AlignConfig.steps": AT_LEAST_1,
    "AlignConfig.learning_rate": POSITIVE, "AlignConfig.beta": AT_LEAST_0, "AlignConfig.num_generations": AT_LEAST_1,
    "AlignConfig.gradient_accumulation_steps": AT_LEAST_1, "AlignConfig.max_completion_length": AT_LEAST_1,
    "AlignConfig.temperature": POSITIVE, "AlignConfig.save_steps": AT_LEAST_1, "AlignConfig.save_total_limit": AT_LEAST_1,
    "AlignConfig.logging_steps": AT_LEAST_1,
    "PeftSettings.r": AT_LEAST_1, "PeftSettings.alpha": AT_LEAST_1, "PeftSettings.dropout": FRACTION,
    "PromptSettings.n_harmful": AT_LEAST_0, "PromptSettings.n_benign": AT_LEAST_0, "PromptSettings.holdout": FRACTION,
    "MonitorSettings.every_n_steps": AT_LEAST_1, "MonitorSettings.n_prompts": Range(2), "MonitorSettings.benign_fraction": UNIT,
    "MonitorSettings.max_new_tokens": AT_LEAST_1, "MonitorSettings.window": AT_LEAST_1, "MonitorSettings.reward_rise": AT_LEAST_0,
    "MonitorSettings.compliance_rise": AT_LEAST_0, "MonitorSettings.benign_refusal_rise": AT_LEAST_0,
    "MonitorSettings.patience": AT_LEAST_1, "MonitorSettings.drift_rise": AT_LEAST_0, "MonitorSettings.refusal_drift_rise": AT_LEAST_0,
    "DpoSettings.iterations": AT_LEAST_1, "DpoSettings.epochs": AT_LEAST_1, "DpoSettings.refusal_candidates": AT_LEAST_0,
    "DpoSettings.min_gap": AT_LEAST_0, "DpoSettings.sft_weight": AT_LEAST_0,
    "DpoSettings.generation_batch_size": AT_LEAST_1,
    "PairwiseProbe.holdout": FRACTION, "PairwiseProbe.limit": AT_LEAST_1, "PairwiseProbe.n_boot": AT_LEAST_1,
    # pipeline data
    "OnPolicySettings.samples": AT_LEAST_0, "OnPolicySettings.check_prompts": AT_LEAST_0, "RecipeConfig.rounds": AT_LEAST_1, "AnnotatorSettings.budget": AT_LEAST_0,
    # eval
    "EvalConfig.limit": AT_LEAST_1, "EvalConfig.holdout": FRACTION, "EvalConfig.bootstrap": AT_LEAST_0,
    "GenerationConfig.temperature": AT_LEAST_0, "GenerationConfig.top_p": SHARE, "GenerationConfig.max_new_tokens": AT_LEAST_1,
}


def rule_for(owner: type, name: str, metadata: Any = None) -> Range | None:
    """The rule of field ``name`` declared on dataclass ``owner`` (``None``: only finiteness is checked)."""
    if metadata and "range" in metadata:
        return metadata["range"]  # type: ignore[no-any-return]
    for cls in owner.__mro__:
        if f"{cls.__name__}.{name}" in RANGES:
            return RANGES[f"{cls.__name__}.{name}"]
    return RANGES.get(name)


def check_number(key: str, value: Any, rule: Range | None) -> None:
    """Raise a one-line :class:`UserError` when ``value`` (a setting called ``key``) is not finite or outside ``rule``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise UserError(f"setting '{key}' is {value}; it must be a finite number (set {key}=... in the YAML or as an override)")
    if rule is not None and not rule.contains(value):
        raise UserError(f"setting '{key}' is {value:g}; it must be {rule.describe()} (set {key}=... in the YAML or as an override)")


def check_choice(name: str, value: Any, choices: Iterable[str]) -> None:
    """Raise a one-line :class:`UserError` when the setting ``name`` is not one of ``choices`` (with a did-you-mean)."""
    choices = list(choices)
    if value in choices:
        return
    close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UserError(f"{name} '{value}' is unknown; use one of {', '.join(choices)}{hint}")


def check_ranges(cfg: Any, prefix: str = "") -> None:
    """Check every numeric setting of the dataclass instance ``cfg`` (nested dataclasses, lists and dicts too).

    Raises:
        UserError: the first value out of range, named by its dotted key.
    """
    for f in dataclasses.fields(cfg):
        key, value = prefix + f.name, getattr(cfg, f.name)
        rule = rule_for(type(cfg), f.name, f.metadata)
        _check_value(key, value, rule)


def _check_value(key: str, value: Any, rule: Range | None) -> None:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        check_ranges(value, key + ".")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(f"{key}.{i}", item, rule)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_value(f"{key}.{name}", item, rule)
    else:
        check_number(key, value, rule)
