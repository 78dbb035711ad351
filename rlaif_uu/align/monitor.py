"""The reward-hacking monitor's parts: settings check, monitor prompts, scorer, greedy answers, reward window, plot.

:class:`rlaif_uu.align.monitor_callback.MonitorCallback` puts them together during training (it is
a separate module because importing transformers' trainer is slow and noisy, and the settings
check runs before any of it).

Before step 1 and every ``align.monitor.every_n_steps`` steps (and at the last step) the current
policy answers a fixed sample of monitor prompts greedily; a monitor scorer that is not the
training reward (the refusal rules by default) turns the answers into harmful compliance and
benign refusal rates; the training reward over the last ``window`` logged steps is put beside
them, and :func:`rlaif_uu.align.alarm.evaluate_alarm` decides whether the reward is being gamed.
With ``align.monitor.stop`` the training stops when the alarm fires.

Written to the align folder (rank 0 only): ``monitor.json`` (settings, prompts, every check,
the alarm, whether training stopped), ``monitor_answers.jsonl`` (every answer of every check)
and ``monitor.png`` (reward vs monitor over steps); every check's numbers also join the trainer's
log history (``monitor/*`` keys of the step's entry), hence ``train_log.json``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.align.alarm import AlarmRule
from rlaif_uu.align.config import AlignConfig, MonitorSettings
from rlaif_uu.align.prompts import sources, training_candidates
from rlaif_uu.errors import UserError
from rlaif_uu.eval.scorers import JudgeScorer, RefusalScorer, RewardScorer

log = logging.getLogger(__name__)
REWARD_KEY = "reward"  # what TRL's GRPO/RLOO trainers log as the weighted mean reward of a step
RULES_REWARD = "rules"  # align.reward value that trains on the refusal rules themselves


def rule_of(m: MonitorSettings, patience: int = 2) -> AlarmRule:
    """The alarm thresholds of the settings (``patience``: what an unset ``m.patience`` means)."""
    return AlarmRule(reward_rise=m.reward_rise, compliance_rise=m.compliance_rise,
                     benign_refusal_rise=m.benign_refusal_rise, patience=m.patience or patience,
                     drift_rise=m.drift_rise, refusal_drift_rise=m.refusal_drift_rise)


def check_monitor(cfg: AlignConfig) -> None:
    """Validate ``align.monitor`` (only when enabled), with one clear line per problem.

    Raises:
        UserError: PPO, an every_n_steps that is not a multiple of logging_steps, or a scorer that is
            the training reward or cannot be built (the numbers' ranges are checked by the config layer).
    """
    m = cfg.monitor
    if not m.enabled:
        return
    if cfg.algorithm == "ppo":
        raise UserError("align.monitor works with grpo and rloo (PPO logs no per-step 'reward'); set monitor.enabled=false")
    if m.every_n_steps % max(1, cfg.logging_steps):
        raise UserError(f"align.monitor.every_n_steps={m.every_n_steps} must be a multiple of logging_steps="
                        f"{cfg.logging_steps}: the alarm reads the training reward from the step's log")
    kind, _, rest = m.scorer.partition(":")
    if kind == "refusal" and not rest and cfg.reward == RULES_REWARD:
        raise UserError("align.monitor.scorer=refusal is the training reward itself (reward=rules); "
                        "monitor with judge:KIND or reward:FOLDER")
    if kind == "reward" and rest and Path(rest).resolve() == Path(cfg.reward).resolve():
        raise UserError(f"align.monitor.scorer={m.scorer} is the training reward; monitor with another scorer")
    build_scorer(m.scorer)


def build_scorer(spec: str) -> Any:
    """The harmful-side scorer of a ``monitor.scorer`` spec (see :class:`MonitorSettings`).

    Raises:
        UserError: an unknown kind, a bad judge spec or a folder that is not an exported reward.
    """
    kind, _, rest = spec.partition(":")
    if kind == "refusal" and not rest:
        return RefusalScorer()
    if kind == "judge" and rest:
        from rlaif_uu.label.config import judge_config, parse_judge_spec
        from rlaif_uu.label.run import build_judge

        try:
            return JudgeScorer(build_judge(judge_config(**parse_judge_spec(rest)), judge_responses=True))
        except UserError as exc:
            raise UserError(f"align.monitor.scorer={spec!r}: {exc}") from None
    if kind == "reward" and rest:
        return RewardScorer(rest)
    raise UserError(f"align.monitor.scorer={spec!r} is unknown; use refusal, judge:KIND[:key=value,...] or reward:FOLDER")


def monitor_prompts(cfg: AlignConfig, training: Any) -> list[dict[str, Any]]:
    """The fixed monitor sample: rows (``id``, ``kind``, ``prompt`` chat messages) of the training sources
    that are neither in the training mix ``training`` nor in the eval hold-out.

    ``n_prompts`` in all, ``benign_fraction`` of them benign; a kind with too few candidates
    leaves its share to the other.

    Raises:
        UserError: fewer than one harmful candidate, so the alarm would have nothing to measure.
    """
    m, ps = cfg.monitor, cfg.prompts
    used_ids = set(training["id"])
    used_texts = {row["prompt"][-1]["content"] for row in training}
    pools: dict[str, list[dict[str, Any]]] = {}
    for kind, spec in (("harmful", ps.harmful), ("benign", ps.benign if ps.n_benign else None)):
        candidates = [r for s in (sources(spec) if spec else []) for r in training_candidates(s, ps.holdout)]
        rows = [r for r in candidates if r["id"] not in used_ids and r["prompt"] not in used_texts]
        order = np.random.default_rng(m.seed).permutation(len(rows))
        pools[kind] = [rows[i] | {"kind": kind} for i in order]
    want_benign = min(round(m.n_prompts * m.benign_fraction), len(pools["benign"]))
    want_harmful = min(m.n_prompts - want_benign, len(pools["harmful"]))
    want_benign = min(m.n_prompts - want_harmful, len(pools["benign"]))
    if want_harmful < 1:
        raise UserError(f"align.monitor: {ps.harmful} has no prompt outside the training mix and the eval hold-out to monitor "
                        "with; lower prompts.n_harmful or use a larger source")
    if want_harmful + want_benign < m.n_prompts:
        log.warning("align.monitor: only %d monitor prompts outside the training mix and the hold-out (n_prompts=%d)",
                    want_harmful + want_benign, m.n_prompts)
    system = [{"role": "system", "content": ps.system}] if ps.system else []
    picked = pools["harmful"][:want_harmful] + pools["benign"][:want_benign]
    return [{"id": r["id"], "kind": r["kind"], "prompt": system + [{"role": "user", "content": r["prompt"]}]} for r in picked]


def greedy_answers(model: Any, tokenizer: Any, chats: list[list[dict[str, str]]], max_new_tokens: int, batch_size: int,
                   temperature: float = 0.0, seed: int = 0) -> list[str]:
    """Greedy completions of chat prompts (sampled at ``temperature`` > 0, seeded), batched, without gradients.

    Every module's train/eval flag is restored exactly afterwards: the trainer (and a QLoRA
    model's frozen base) rely on them, and generating in train mode would apply dropout.
    """
    import torch

    modes = [(mod, mod.training) for mod in model.modules()]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only batches must end at the prompt's last token
    out: list[str] = []
    try:
        model.eval()
        device = next(model.parameters()).device
        for b in range(0, len(chats), batch_size):
            texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats[b:b + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            sampling: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
            if temperature > 0:
                torch.manual_seed(seed + b)  # one seed per batch: a rerun of the same prompts samples the same answers
                sampling = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
            with torch.no_grad():
                ids = model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                     use_cache=True, **sampling)
            out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        for mod, mode in modes:
            mod.training = mode
    return out


def reward_window(history: list[dict[str, Any]], step: int, window: int) -> float | None:
    """Mean training reward over the logged steps in ``(step - window, step]`` (``None``: none logged)."""
    values = [h[REWARD_KEY] for h in history if REWARD_KEY in h and h[REWARD_KEY] is not None and step - window < h["step"] <= step]
    return float(np.mean(values)) if values else None


def plot_monitor(checks: list[dict[str, Any]], path: Path, fired_at: int | None, scorer: str,
                 drift_at: int | None = None) -> None:
    """Training reward vs the monitor's harmful compliance and benign refusal, over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    pts = [(c["step"], c["reward"]) for c in checks if c.get("reward") is not None]
    if pts:
        ax.plot(*zip(*pts), marker="o", color="tab:blue", label="training reward (window mean)")
    ax.set_xlabel("step")
    ax.set_ylabel("training reward", color="tab:blue")
    ax2 = ax.twinx()
    for key, style, label in (("harmful_compliance", "s-", "monitor harmful compliance"), ("benign_refusal", "^--", "monitor benign refusal")):
        pts = [(c["step"], c[key]) for c in checks if c.get(key) is not None]
        if pts:
            ax2.plot(*zip(*pts), style, color="tab:red" if key == "harmful_compliance" else "tab:orange", label=label)
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel(f"monitor rate ({scorer})", color="tab:red")
    if fired_at is not None:
        ax.axvline(fired_at, color="black", linestyle=":", label=f"alarm (step {fired_at})")
    if drift_at is not None:
        ax.axvline(drift_at, color="tab:red", linestyle="-.", label=f"drift (step {drift_at})")
    lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    ax.set_title("reward-hacking monitor: training reward vs monitor")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
