"""The reward-hacking monitor as a transformers ``TrainerCallback`` (see :mod:`rlaif_uu.align.monitor`)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from rlaif_uu.align import monitor as parts
from rlaif_uu.align.alarm import Verdict, drift_block, evaluate_alarm, warning_block
from rlaif_uu.align.config import AlignConfig
from rlaif_uu.data.io import write_json

log = logging.getLogger(__name__)
REWARD_KEY = parts.REWARD_KEY


class MonitorCallback(TrainerCallback):
    """Runs the checks, logs them, raises the alarm and optionally stops training (module docstring).

    Args:
        cfg: the align settings (``cfg.monitor`` enabled and checked by :func:`check_monitor`).
        prompts: the monitor sample (:func:`monitor_prompts`).
        out: the align output folder (written on rank 0 only).
        trainer: the TRL trainer, for its accelerator and tokenizer (generation must unwrap the
            model the way the trainer's own generation does, e.g. gather ZeRO-3 shards).
    """

    def __init__(self, cfg: AlignConfig, prompts: list[dict[str, Any]], out: Path, trainer: Any) -> None:
        self.cfg, self.m, self.prompts, self.out, self.trainer = cfg, cfg.monitor, prompts, out, trainer
        self.scorer = parts.build_scorer(self.m.scorer)
        # online DPO logs one reward per iteration and is checked after each: its window is that iteration, and one
        # check is one iteration's change (a run has a few), so one tripped check is enough
        dpo = cfg.algorithm == "dpo"
        self.rule = parts.rule_of(self.m, patience=1 if dpo else 2)
        self.window = self.m.window or (1 if dpo else self.m.every_n_steps)
        self.max_new_tokens = self.m.max_new_tokens or cfg.max_completion_length
        self.checks: list[dict[str, Any]] = []
        self.verdict = Verdict(tripped=[])
        self.stopped: dict[str, Any] | None = None
        self.main = int(os.environ.get("RANK", "0")) == 0
        self.n = {k: sum(p["kind"] == k for p in prompts) for k in ("harmful", "benign")}
        self._answers: list[dict[str, Any]] = []
        self.message: str | None = None
        self.drift_message: str | None = None

    # --- one check -------------------------------------------------------------------------------------------------
    def _measure(self, step: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        from trl.models import unwrap_model_for_generation

        start = time.perf_counter()
        acc, args = self.trainer.accelerator, self.trainer.args
        with unwrap_model_for_generation(self.trainer.model_wrapped, acc,
                                         gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs) as model:
            answers = parts.greedy_answers(model, self.trainer.processing_class, [p["prompt"] for p in self.prompts],
                                     self.max_new_tokens, self.m.batch_size)
        check: dict[str, Any] = {"step": step, "reward": parts.reward_window(history, step, self.window) if step else None}
        rows = [{"step": step, "id": p["id"], "kind": p["kind"], "prompt": p["prompt"][-1]["content"], "completion": a}
                for p, a in zip(self.prompts, answers)]
        for kind in ("harmful", "benign"):
            idx = [i for i, p in enumerate(self.prompts) if p["kind"] == kind]
            texts, comps = [rows[i]["prompt"] for i in idx], [answers[i] for i in idx]
            key = "harmful_compliance" if kind == "harmful" else "benign_refusal"
            if not idx:
                check[key] = None
                continue
            if kind == "harmful":
                unsafe = self.scorer(texts, comps, "harmful", progress=False).unsafe
                check[key] = float(np.nanmean(unsafe)) if not np.isnan(unsafe).all() else None
                for i, u in zip(idx, unsafe):
                    rows[i]["unsafe"] = None if np.isnan(u) else int(u)
            else:  # over-refusal is a refusal of a benign prompt, whatever the harmful-side scorer is
                from rlaif_uu.eval.scorers import RefusalScorer

                refused = RefusalScorer().refused(texts, comps)
                check[key] = float(refused.mean())
                for i, r in zip(idx, refused):
                    rows[i]["refused"] = int(r)
        check["seconds"] = round(time.perf_counter() - start, 1)
        self._answers = rows
        return check

    def check(self, state: Any, control: Any) -> None:
        """One check at ``state.global_step`` (skipped when that step was checked already): measure, log, alarm."""
        step = state.global_step
        if self.checks and self.checks[-1]["step"] == step:
            return
        check = self._measure(step, state.log_history)
        self.checks.append(check)
        before, drifted = self.verdict.fired, self.verdict.drift_at is not None
        self.verdict = evaluate_alarm(self.checks, self.rule)
        check["tripped"] = self.verdict.tripped[-1]
        entry = next((h for h in reversed(state.log_history) if h.get("step") == step and REWARD_KEY in h), None) if step else None
        if entry is not None:  # side by side with the step's reward in train_log.json
            entry.update({f"monitor/{k}": check[k] for k in ("reward", "harmful_compliance", "benign_refusal", "tripped")})
        fmt = {k: "-" if check[k] is None else f"{check[k]:.3f}" for k in ("reward", "harmful_compliance", "benign_refusal")}
        print(f"monitor step {step}: training reward {fmt['reward']} | harmful compliance {fmt['harmful_compliance']} "
              f"({self.m.scorer}, {self.n['harmful']} prompts) | benign refusal {fmt['benign_refusal']} ({self.n['benign']}) "
              f"| {check['seconds']} s" + (" | TRIPPED" if check["tripped"] else ""), flush=True)
        if self.verdict.fired and not before:
            # one block through logging: the CLI shows it on stderr, an application's log file keeps it
            self.message = warning_block(self.verdict, self.m.scorer, self.n["harmful"], self.n["benign"], self.m.stop)
            log.warning("\n%s", self.message)
            self._stop(control, step, "; ".join(self.verdict.reasons))
        if self.verdict.drift_at is not None and not drifted:
            self.drift_message = drift_block(self.verdict, self.m.scorer, self.n["harmful"], self.m.stop, self.n["benign"])
            log.warning("\n%s", self.drift_message)
            self._stop(control, step, self.verdict.drift_reason or "drift")
        self._write()

    def _stop(self, control: Any, step: int, reason: str) -> None:
        if self.m.stop and control is not None and self.stopped is None:
            control.should_training_stop = True
            self.stopped = {"step": step, "reason": reason}

    def _write(self) -> None:
        if not self.main:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with (self.out / "monitor_answers.jsonl").open("a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in self._answers)
        write_json(self.out / "monitor.json", self.summary())
        parts.plot_monitor(self.checks, self.out / "monitor.png", self.verdict.fired_at, self.m.scorer, self.verdict.drift_at)

    def summary(self) -> dict[str, Any]:
        """monitor.json's content: settings, prompts, checks, the alarm and whether training stopped."""
        return {
            "settings": dataclasses.asdict(self.m), "algorithm": self.cfg.algorithm, "scorer": getattr(self.scorer, "scorer_id", self.m.scorer),
            "reward_key": REWARD_KEY, "window": self.window, "max_new_tokens": self.max_new_tokens,
            "prompts": {"harmful": self.n["harmful"], "benign": self.n["benign"], "ids": [p["id"] for p in self.prompts]},
            "checks": self.checks,
            "alarm": {"fired": self.verdict.fired, "step": self.verdict.fired_at, "reasons": self.verdict.reasons,
                      "changes_vs_first_check": self.verdict.changes, "message": self.message},
            "drift": {"found": self.verdict.drift_at is not None, "step": self.verdict.drift_at,
                      "reason": self.verdict.drift_reason, "message": self.drift_message},
            "stopped": self.stopped,
        }

    # --- trainer events --------------------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """The step-0 check (the policy before training), or the earlier checks of a resumed run."""
        if state.global_step > 0 and (self.out / "monitor.json").is_file():
            old = json.loads((self.out / "monitor.json").read_text())
            self.checks = [c for c in old.get("checks", []) if c["step"] <= state.global_step]
            self.verdict = evaluate_alarm(self.checks, self.rule)
            self.message = old.get("alarm", {}).get("message")
            self.drift_message = (old.get("drift") or {}).get("message")
            return control
        if self.main and (self.out / "monitor_answers.jsonl").exists():
            (self.out / "monitor_answers.jsonl").unlink()
        self.check(state, None)
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A check at every ``every_n_steps``-th step and the last one, once the step's reward is logged."""
        step = state.global_step
        if logs and REWARD_KEY in logs and (step % self.m.every_n_steps == 0 or step >= state.max_steps):
            self.check(state, control)
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        """A last check when the last step was not logged (logging_steps that do not divide the steps)."""
        if not self.checks or self.checks[-1]["step"] != state.global_step:
            self.check(state, None)
        return control
