"""``rlaif-uu align``: run the trainer, checkpoint, resume, save the final policy and the reward curve.

Layout of ``OUT``::

    checkpoints/checkpoint-N/   TRL checkpoints (every save_steps; --resume continues from the newest)
    policy/                     the final policy (LoRA adapter, or merged weights with peft.merge=true)
    prompts.jsonl               the training prompt mix
    train_log.json              TRL's log history (reward, KL, loss per step) + settings
    reward_curve.png            mean reward (and KL) per step
    monitor.json, monitor.png   the reward-hacking monitor (align.monitor): reward vs monitor per check, the alarm
    monitor_answers.jsonl       the policy's answers to the monitor prompts at every check
    config.yaml                 the resolved settings
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.monitor import check_monitor, monitor_prompts
from rlaif_uu.align.prompts import build_prompts
from rlaif_uu.config import to_yaml
from rlaif_uu.data.io import atomic_dir, check_output, write_json, write_records
from rlaif_uu.errors import UserError


def _last_checkpoint(folder: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def plot_reward_curve(history: list[dict[str, Any]], path: Path) -> None:
    """Mean reward per step (with its spread) and the KL to the reference policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history if "reward" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if steps:
        reward = [h["reward"] for h in history if "reward" in h]
        std = [h.get("reward_std", 0.0) for h in history if "reward" in h]
        ax.plot(steps, reward, marker="o", label="mean reward")
        ax.fill_between(steps, [r - s for r, s in zip(reward, std)], [r + s for r, s in zip(reward, std)], alpha=0.2)
        kl = [(h["step"], h["kl"]) for h in history if "kl" in h]
        if kl:
            ax2 = ax.twinx()
            ax2.plot(*zip(*kl), color="tab:red", linestyle="--", label="KL")
            ax2.set_ylabel("KL to reference", color="tab:red")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title("alignment: reward per step")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def gathered_state_dict(trainer: Any) -> dict[str, Any] | None:
    """Under DeepSpeed ZeRO-3 each rank holds a shard: gather the full weights (call on every rank)."""
    zero = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    return trainer.accelerator.get_state_dict(trainer.deepspeed) if zero and zero.zero_stage == 3 else None


def save_policy(trainer: Any, cfg: AlignConfig, out: Path, state_dict: dict[str, Any] | None = None) -> Path:
    """Write the final policy to ``out/policy`` atomically (LoRA merged when ``peft.merge``).

    ``state_dict``: the gathered weights of a ZeRO-3 run (:func:`gathered_state_dict`).
    """
    model = trainer.accelerator.unwrap_model(trainer.model)
    model = getattr(model, "policy", model)  # PPO trains a policy + value-model wrapper
    if cfg.peft.kind != "none" and cfg.peft.merge:
        if cfg.peft.kind == "qlora":
            raise UserError("peft.merge=true with qlora would merge into 4-bit weights; save the adapter "
                            "(peft.merge=false) and merge it into a full-precision base")
        model = model.merge_and_unload()
    with atomic_dir(out / "policy") as tmp:
        model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
        trainer.processing_class.save_pretrained(tmp)
    return out / "policy"


def _attach_monitor(cfg: AlignConfig, prompts: list[dict[str, Any]], out: Path, trainer: Any) -> Any:
    """Add the reward-hacking monitor's callback on ``prompts`` to the trainer when ``align.monitor.enabled`` (else None)."""
    if not cfg.monitor.enabled:
        return None
    from rlaif_uu.align.monitor_callback import MonitorCallback

    callback = MonitorCallback(cfg, prompts, out, trainer)
    trainer.add_callback(callback)
    return callback


def monitor_summary(monitor: Any) -> dict[str, Any] | None:
    """The alarm and early stop of a monitor callback, for train_log.json (None: no monitor)."""
    return None if monitor is None else {k: monitor.summary()[k] for k in ("alarm", "stopped")}


def run_align(cfg: AlignConfig) -> Path:
    """Train the policy against the reward; returns the output folder."""
    from rlaif_uu.align.trainer import build_trainer, check_config

    out = check_output(cfg.out, folder=True)
    checkpoints = out / "checkpoints"
    resume_from = _last_checkpoint(checkpoints) if cfg.resume else None
    if cfg.resume and resume_from is None:
        raise UserError(f"{checkpoints}: no checkpoint to resume from; run without --resume")
    main = int(os.environ.get("RANK", "0")) == 0  # only rank 0 of a multi-process launch writes OUT
    if main and not cfg.resume and out.exists() and any(out.iterdir()) and not cfg.overwrite:
        raise UserError(f"{out}: output directory exists and is not empty; pass --resume to continue, "
                        "--overwrite to start over, or choose another --out")
    check_config(cfg)
    check_monitor(cfg)
    dataset = build_prompts(cfg.prompts)  # every input is checked before OUT is touched
    watch = monitor_prompts(cfg, dataset) if cfg.monitor.enabled else []
    if main:
        if not cfg.resume and out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        write_records(out / "prompts.jsonl", [{"id": r["id"], "kind": r["kind"], "prompt": r["prompt"][-1]["content"]}
                                              for r in dataset])
        (out / "config.yaml").write_text(to_yaml(cfg))
    start = time.perf_counter()
    try:
        trainer = build_trainer(cfg, dataset, str(checkpoints))
        monitor = _attach_monitor(cfg, watch, out, trainer)
        trainer.train(resume_from_checkpoint=resume_from)
    except BaseException:
        # a fresh run that failed before its first checkpoint leaves nothing, so a plain rerun is not refused as "not empty"
        if main and not cfg.resume and _last_checkpoint(checkpoints) is None:
            shutil.rmtree(out, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    state_dict = gathered_state_dict(trainer)
    if not main:
        return out
    policy = save_policy(trainer, cfg, out, state_dict)
    history = trainer.state.log_history
    acc, zero = trainer.accelerator, getattr(trainer.accelerator.state, "deepspeed_plugin", None)
    launch = {"world_size": acc.num_processes, "distributed_type": acc.distributed_type.value,
              "zero_stage": zero.zero_stage if zero else None}
    write_json(out / "train_log.json", {"algorithm": cfg.algorithm, "steps": trainer.state.global_step,
                                        "resumed_from": resume_from, "seconds": seconds, "launch": launch,
                                        "log_history": history, "monitor": monitor_summary(monitor)})
    plot_reward_curve(history, out / "reward_curve.png")
    rewards = [h["reward"] for h in history if "reward" in h]
    trend = f"; mean reward {rewards[0]:.3f} (first step) -> {rewards[-1]:.3f} (last)" if rewards else ""
    print(f"{cfg.algorithm}: {trainer.state.global_step} steps in {seconds:.0f} s{trend}; policy in {policy}")
    if monitor is not None and monitor.stopped:
        print(f"stopped early by the reward-hacking alarm at step {monitor.stopped['step']}: {monitor.stopped['reason']}")
    return out
