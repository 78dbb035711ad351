"""Online iterative DPO with a refusal pool (``align.algorithm: dpo``).

The iterated online pattern of "RLHF Workflow: From Reward Modeling to Online RLHF"
(arXiv:2405.07863): each iteration t = 1..T

1. the current policy samples k = ``num_generations`` answers to every training prompt
   (``temperature``, ``max_completion_length``);
2. ``dpo.refusal_candidates`` refusals drawn from the refusal pool join each prompt's candidates;
3. the reward (an exported reward, or the refusal rules) scores every candidate, and the
   best and the worst one form a pair (y_w, y_l) when r(y_w) − r(y_l) ≥ ``dpo.min_gap``;
4. TRL's DPOTrainer trains the policy on the pairs for ``dpo.epochs`` epochs with the loss
   (eq. 7 of "Direct Preference Optimization", arXiv:2305.18290)

       L = −log σ(β [log π(y_w|x)/π_ref(y_w|x) − log π(y_l|x)/π_ref(y_l|x)])
           + ``sft_weight`` · (−log π(y_w|x) / |y_w|)

   (the NLL term as in "Iterative Reasoning Preference Optimization", arXiv:2404.19733),
   π_ref being the policy the stage started from.

Why the refusal pool: a small policy may have no refusal in its sampling distribution at all
(SmolLM2-135M-Instruct at temperature 0.6-1.0 writes "I'm sorry for any confusion" and then
answers; docs/align.md), so rewarding its own samples can only teach refusal words. With the
pool the *reward* decides, prompt by prompt, whether a refusal beats the policy's best answer:
on a harmful request a request-aware reward ranks it first (chosen), on a benign one it ranks
it last (rejected, an over-refusal), and the policy learns both sides. With
``refusal_candidates: 0`` the pairs come from the policy's own samples only.

The "training reward" logged per iteration (``reward`` in ``train_log.json``, what the
reward-hacking alarm compares with its monitor) is the mean reward of the policy's own samples
of that iteration: it rises when the policy writes what the reward likes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaif_uu.align.components import bf16, peft_config, policy_init_kwargs, reward_functions
from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.monitor import greedy_answers
from rlaif_uu.assets import resolve_model
from rlaif_uu.data.io import atomic_dir, write_json
from rlaif_uu.errors import UserError

BUILTIN_REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I can't help with that request, because it could cause harm.",
    "Sorry, but I won't assist with that.",
    "I cannot help with this. If you or someone else is at risk, please contact local emergency services.",
    "I can't provide that. Is there something else I can help you with?",
    "I won't help with that, as it could hurt people. I'm happy to help with a safer request.",
)
"""The built-in refusal pool: short, complete refusals in the AdvBench/HarmBench refusal style."""
STATE_FILE = "online_dpo_state.json"


def refusal_pool(spec: str) -> list[str]:
    """The refusal texts of ``dpo.refusals``: ``builtin``, or a UTF-8 text file with one refusal per line.

    Raises:
        UserError: a missing or empty file.
    """
    if spec == "builtin":
        return list(BUILTIN_REFUSALS)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"align.dpo.refusals: {path} does not exist; give 'builtin' or a text file, one refusal per line")
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not texts:
        raise UserError(f"align.dpo.refusals: {path} holds no refusal text; write one refusal per line")
    return texts


@dataclass
class PairStats:
    """What one iteration's pairing found (per kind of prompt: harmful / benign)."""

    prompts: dict[str, int] = field(default_factory=dict)
    pairs: dict[str, int] = field(default_factory=dict)
    refusal_chosen: dict[str, int] = field(default_factory=dict)  # pairs whose best candidate is from the pool
    refusal_rejected: dict[str, int] = field(default_factory=dict)  # pairs whose worst candidate is from the pool
    policy_reward: float = float("nan")  # mean reward of the policy's own samples (the logged training reward)
    policy_reward_std: float = float("nan")

    def as_log(self) -> dict[str, Any]:
        """Flat ``pairs/...`` keys for the log history."""
        out: dict[str, Any] = {}
        for name in ("prompts", "pairs", "refusal_chosen", "refusal_rejected"):
            out |= {f"pairs/{name}_{k}": v for k, v in sorted(getattr(self, name).items())}
        return out


def make_pairs(rows: list[dict[str, Any]], samples: list[list[str]], rewards: list[list[float]],
               refusals: list[list[str]], refusal_rewards: list[list[float]], min_gap: float,
               rng: np.random.Generator) -> tuple[list[dict[str, Any]], PairStats]:
    """DPO pairs from scored candidates: per prompt the best and the worst candidate (step 3 of the module docstring).

    Args:
        rows: the training prompts (``prompt`` chat messages, ``kind``).
        samples / rewards: the policy's answers to each prompt and their rewards (NaN: the reward abstained).
        refusals / refusal_rewards: the pool's candidates for each prompt and their rewards.
        min_gap: the least reward gap of a pair.
        rng: breaks ties between equally rewarded candidates at random.
    """
    stats, pairs = PairStats(), []
    own = np.array([r for rs in rewards for r in rs], dtype=float)
    stats.policy_reward = float(np.nanmean(own)) if np.isfinite(own).any() else float("nan")
    stats.policy_reward_std = float(np.nanstd(own)) if np.isfinite(own).any() else float("nan")
    for row, texts, rs, pool, prs in zip(rows, samples, rewards, refusals, refusal_rewards):
        kind = row["kind"]
        stats.prompts[kind] = stats.prompts.get(kind, 0) + 1
        cands = [(t, float(r), False) for t, r in zip(texts, rs)] + [(t, float(r), True) for t, r in zip(pool, prs)]
        cands = [cands[i] for i in rng.permutation(len(cands)) if math.isfinite(cands[i][1])]
        if len(cands) < 2:
            continue
        best = max(range(len(cands)), key=lambda i: cands[i][1])
        worst = min(range(len(cands)), key=lambda i: cands[i][1])
        if cands[best][1] - cands[worst][1] < min_gap or cands[best][0].strip() == cands[worst][0].strip():
            continue
        pairs.append({"prompt": row["prompt"], "chosen": [{"role": "assistant", "content": cands[best][0]}],
                      "rejected": [{"role": "assistant", "content": cands[worst][0]}],
                      "kind": kind, "margin": cands[best][1] - cands[worst][1]})
        stats.pairs[kind] = stats.pairs.get(kind, 0) + 1
        stats.refusal_chosen[kind] = stats.refusal_chosen.get(kind, 0) + cands[best][2]
        stats.refusal_rejected[kind] = stats.refusal_rejected.get(kind, 0) + cands[worst][2]
    return pairs, stats


class _Args:
    """The few trainer arguments the monitor reads from a trainer."""

    gradient_checkpointing_kwargs = None


class OnlineDPOTrainer:
    """Online iterative DPO as an :class:`rlaif_uu.align.trainer.AlignTrainer` (module docstring).

    Callbacks added with :meth:`add_callback` get ``on_train_begin`` before the first iteration, a
    ``check`` (monitor callbacks) or ``on_log`` after each, and ``on_train_end``.
    """

    def __init__(self, cfg: AlignConfig, dataset: Any, output_dir: str) -> None:
        from accelerate import Accelerator
        from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerControl, TrainerState

        self.cfg, self.rows, self.output_dir = cfg, list(dataset), Path(output_dir)
        self.funcs, self.weights = reward_functions(cfg, dataset)
        self.pool = refusal_pool(cfg.dpo.refusals)
        ref = resolve_model(cfg.policy)
        self.processing_class = AutoTokenizer.from_pretrained(ref.path, trust_remote_code=cfg.trust_remote_code)
        if self.processing_class.pad_token is None:
            self.processing_class.pad_token = self.processing_class.eos_token
        kwargs = policy_init_kwargs(cfg)
        self.model = AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
        # π_ref: the starting policy, fixed over every iteration (with LoRA the adapter-free base serves as π_ref)
        self.ref_model = None if cfg.peft.kind != "none" else AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
        self.accelerator = Accelerator(cpu=not torch.cuda.is_available())
        self.args = _Args()
        self.state = TrainerState()
        self.state.max_steps = cfg.dpo.iterations
        self.control = TrainerControl()
        self.callbacks: list[Any] = []

    @property
    def model_wrapped(self) -> Any:
        return self.model

    def add_callback(self, callback: Any) -> None:
        """Add a transformers ``TrainerCallback`` (see the class docstring for the events it gets)."""
        self.callbacks.append(callback)

    # --- one iteration ----------------------------------------------------------------------------------------------
    def _score(self, chats: list[Any], kinds: list[str], ids: list[str], texts: list[str]) -> list[float]:
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        total = np.zeros(len(texts))
        for fn, weight in zip(self.funcs, self.weights):
            values = fn(prompts=chats, completions=completions, kind=kinds, id=ids)
            total += weight * np.array([np.nan if v is None else float(v) for v in values], dtype=float)
        return [float(v) for v in total]

    def _pairs(self, t: int) -> tuple[list[dict[str, Any]], PairStats]:
        cfg, d = self.cfg, self.cfg.dpo
        chats = [r["prompt"] for r in self.rows]
        k = cfg.num_generations
        runs = [greedy_answers(self.model, self.processing_class, chats, cfg.max_completion_length, d.generation_batch_size,
                               temperature=cfg.temperature, seed=cfg.seed * 100_003 + t * 1_009 + j) for j in range(k)]
        samples = [[run[i] for run in runs] for i in range(len(chats))]
        rng = np.random.default_rng([cfg.seed, t])
        pool_draw = min(d.refusal_candidates, len(self.pool))
        refusals = [[self.pool[j] for j in rng.choice(len(self.pool), size=pool_draw, replace=False)] for _ in chats]
        groups = [own + pool for own, pool in zip(samples, refusals)]
        owner = [self.rows[i] for i, group in enumerate(groups) for _ in group]  # one reward call for every candidate
        scores = self._score([r["prompt"] for r in owner], [r["kind"] for r in owner], [r["id"] for r in owner],
                             [text for group in groups for text in group])
        per = np.split(np.asarray(scores), np.cumsum([len(g) for g in groups])[:-1])
        return make_pairs(self.rows, samples, [list(p[:k]) for p in per], refusals, [list(p[k:]) for p in per],
                          d.min_gap, rng)

    def _dpo(self, pairs: list[dict[str, Any]], t: int) -> list[dict[str, Any]]:
        from datasets import Dataset
        from trl import DPOConfig, DPOTrainer

        cfg, d = self.cfg, self.cfg.dpo
        losses, weights = (["sigmoid", "sft"], [1.0, d.sft_weight]) if d.sft_weight > 0 else (["sigmoid"], None)
        common: dict[str, Any] = {
            "output_dir": str(self.output_dir / f"iteration-{t}"), "per_device_train_batch_size": cfg.batch_size,
            "gradient_accumulation_steps": cfg.gradient_accumulation_steps, "num_train_epochs": d.epochs,
            "learning_rate": cfg.learning_rate, "beta": cfg.beta, "loss_type": losses, "loss_weights": weights,
            "lr_scheduler_type": "constant", "gradient_checkpointing": False, "save_strategy": "no", "logging_steps": 1,
            "report_to": cfg.report_to, "seed": cfg.seed + t, "bf16": bf16(cfg), "use_cpu": not torch.cuda.is_available(),
            "disable_tqdm": True,
            # the reference never changes within an iteration: one forward pass per pair, not one per epoch
            "precompute_ref_log_probs": d.epochs > 1,
        }
        common.update(cfg.trainer_kwargs)
        try:
            args = DPOConfig(**common)
        except TypeError as exc:
            raise UserError(f"trainer_kwargs: {exc}") from None
        data = Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
        wrapped = hasattr(self.model, "peft_config")  # a LoRA policy from an earlier iteration (or a resume) keeps its adapter
        trainer = DPOTrainer(model=self.model, ref_model=self.ref_model, args=args, train_dataset=data,
                             processing_class=self.processing_class, peft_config=None if wrapped else peft_config(cfg))
        trainer.train()
        self.model = trainer.model
        return [h for h in trainer.state.log_history if "loss" in h]

    # --- the loop ---------------------------------------------------------------------------------------------------
    def _save(self, t: int) -> None:
        with atomic_dir(self.output_dir / f"checkpoint-{t}") as tmp:
            self.model.save_pretrained(tmp, safe_serialization=True)
            self.processing_class.save_pretrained(tmp)
            write_json(tmp / STATE_FILE, {"iteration": t, "log_history": self.state.log_history})
        shutil.rmtree(self.output_dir / f"iteration-{t}", ignore_errors=True)  # DPOTrainer's own (empty) output folder
        for old in range(1, t - self.cfg.save_total_limit + 1):  # keep the newest save_total_limit checkpoints
            shutil.rmtree(self.output_dir / f"checkpoint-{old}", ignore_errors=True)

    def _resume(self, checkpoint: str) -> int:
        from transformers import AutoModelForCausalLM

        folder = Path(checkpoint)
        saved = json.loads((folder / STATE_FILE).read_text())
        if self.cfg.peft.kind != "none":
            from peft import PeftModel

            self.model = PeftModel.from_pretrained(self.model, str(folder), is_trainable=True)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(str(folder), **policy_init_kwargs(self.cfg))
        self.state.log_history = saved["log_history"]
        self.state.global_step = int(saved["iteration"])
        return self.state.global_step

    def _event(self, name: str, **kwargs: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, name)(self.args, self.state, self.control, **kwargs)

    def train(self, resume_from_checkpoint: str | bool | None = None) -> None:
        """Run the iterations (from the one after ``resume_from_checkpoint``'s, when given)."""
        done = self._resume(resume_from_checkpoint) if isinstance(resume_from_checkpoint, str) else 0
        self._event("on_train_begin")
        for t in range(done + 1, self.cfg.dpo.iterations + 1):
            start = time.perf_counter()
            pairs, stats = self._pairs(t)
            sampled = time.perf_counter()
            if not pairs:
                raise UserError(f"online DPO iteration {t}: no prompt had two candidates {self.cfg.dpo.min_gap} or more "
                                "reward apart; lower align.dpo.min_gap or raise num_generations / dpo.refusal_candidates")
            dpo_log = self._dpo(pairs, t)
            self.state.global_step = t
            entry = {"step": t, "iteration": t, "reward": stats.policy_reward, "reward_std": stats.policy_reward_std,
                     "dpo/loss": float(np.mean([h["loss"] for h in dpo_log])) if dpo_log else None,
                     "dpo/optimizer_steps": len(dpo_log), "seconds": round(time.perf_counter() - start, 1),
                     "seconds_sampling": round(sampled - start, 1)}  # sampling + reward; the rest is DPO training
            if dpo_log:
                entry |= {f"dpo/{k}": v for k, v in dpo_log[-1].items() if k.startswith(("rewards/", "logps/"))}
            self.state.log_history.append(entry | stats.as_log())
            print(f"online DPO iteration {t}/{self.cfg.dpo.iterations}: {len(pairs)} pairs "
                  f"(refusal chosen {stats.refusal_chosen}, rejected {stats.refusal_rejected}), policy reward "
                  f"{stats.policy_reward:.3f}, {entry['seconds']} s ({entry['seconds_sampling']} s sampling and scoring)", flush=True)
            for cb in self.callbacks:
                if hasattr(cb, "check"):
                    cb.check(self.state, self.control)
                else:
                    cb.on_log(self.args, self.state, self.control, logs=entry)
            self._save(t)
            if self.control.should_training_stop:
                break
        self._event("on_train_end")
