"""``SafetyReward``: an exported reward folder as a TRL reward function.

TRL calls a reward function as ``f(prompts, completions, **kwargs) -> list[float | None]``
(a ``None`` is an abstention TRL ignores). Prompts and completions are either strings or
chat messages (``[{"role": ..., "content": ...}]``); both render through the reward
folder's chat template, i.e. into the text the classifier was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError
from rlaif_uu.reward.classifier import sequence_logits
from rlaif_uu.reward.metadata import load_reward_metadata

OUTPUTS = ("probability", "logodds", "centered")
Text = str | list[dict[str, Any]]


def _messages(prompt: Text, completion: Text) -> list[dict[str, Any]]:
    user = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    answer = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else list(completion)
    return user + answer


def _last_user(prompt: Text) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [m["content"] for m in prompt if m.get("role") == "user"]
    return users[-1] if users else ""


def _content(completion: Text) -> str:
    return completion if isinstance(completion, str) else "".join(m.get("content") or "" for m in completion)


class SafetyReward:
    """A reward function ``(prompts, completions, **kw) -> list[float | None]``, higher = safer.

    Args:
        path: an exported reward folder (``rlaif-uu reward export``).
        output: ``probability`` (``P(safe) = sigmoid(logit / T)``), ``logodds`` (``logit / T``)
            or ``centered`` (``2 P(safe) - 1``, in [-1, 1]).
        abstain_band: return ``None`` where ``|P(safe) - 0.5| < abstain_band`` (0 = never).
        length_penalty: subtract ``length_penalty * (words beyond length_free_words) / 100``.
        length_free_words: words a completion may use before the length penalty starts.
        benign_prompts: prompts that must not be refused (strings, or a JSONL/CSV file with
            a ``prompt`` column); a refusal to one of them (refusal-prefix rules) costs
            ``benign_refusal_penalty``.
        benign_refusal_penalty: the penalty for refusing a benign prompt.
        batch_size: rows per forward pass.
        device: ``cuda``/``cpu``; default CUDA when available.
    """

    def __init__(self, path: str | Path, output: str = "probability", abstain_band: float = 0.0,
                 length_penalty: float = 0.0, length_free_words: int = 200,
                 benign_prompts: Iterable[str] | str | Path | None = None, benign_refusal_penalty: float = 0.0,
                 batch_size: int = 16, device: str | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        check_choice("output", output, OUTPUTS)
        self.path = Path(path)
        self.metadata = load_reward_metadata(self.path)
        self.temperature = float(self.metadata.get("temperature", 1.0))
        self.output, self.abstain_band, self.batch_size = output, abstain_band, batch_size
        self.length_penalty, self.length_free_words = length_penalty, length_free_words
        self.benign_refusal_penalty = benign_refusal_penalty
        self.benign = self._benign_set(benign_prompts)
        self._rules: Any = None
        if benign_refusal_penalty and self.benign:
            from rlaif_uu.label.cheap import RuleJudge

            self._rules = RuleJudge()  # built once: the penalty is checked for every completion
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=False)
        # safetensors only: pickled weights can run code when loaded (load_reward_metadata refuses a .bin-only folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(
            self.path, use_safetensors=True, trust_remote_code=False).to(self.device).eval()
        self.max_length = int(getattr(self.model.config, "max_position_embeddings", None) or 4096)
        self.__name__ = "safety_reward"  # TRL logs each reward function under its __name__

    @staticmethod
    def _benign_set(benign: Iterable[str] | str | Path | None) -> frozenset[str]:
        if benign is None:
            return frozenset()
        if isinstance(benign, (str, Path)):
            from rlaif_uu.data.io import read_records

            return frozenset(r["prompt"].strip() for r in read_records(benign, required=("prompt",)))
        return frozenset(p.strip() for p in benign)

    def texts(self, prompts: Sequence[Text], completions: Sequence[Text]) -> list[str]:
        """The classifier texts (chat template of the reward folder) of the pairs."""
        if len(prompts) != len(completions):
            raise UserError(f"{len(prompts)} prompts but {len(completions)} completions")
        return [self.tokenizer.apply_chat_template(_messages(p, c), tokenize=False) for p, c in zip(prompts, completions)]

    def logits(self, prompts: Sequence[Text], completions: Sequence[Text]) -> np.ndarray:
        """Raw safety logits (higher = safer), exactly what TRL reads from ``logits[:, 0]``."""
        return sequence_logits(self.model, self.tokenizer, self.texts(prompts, completions), batch_size=self.batch_size,
                               max_length=self.max_length, add_special_tokens=False)

    def _extra(self, prompt: Text, completion: Text) -> float:
        term = 0.0
        if self.length_penalty:
            words = len(_content(completion).split())
            term -= self.length_penalty * max(0, words - self.length_free_words) / 100
        if (self._rules is not None and _last_user(prompt).strip() in self.benign
                and self._rules.is_refusal(_content(completion))):
            term -= self.benign_refusal_penalty
        return term

    def __call__(self, prompts: Sequence[Text], completions: Sequence[Text], **kwargs: Any) -> list[float | None]:
        """Rewards for the pairs; ``kwargs`` (TRL passes dataset columns) are ignored."""
        z = self.logits(prompts, completions) / self.temperature
        out: list[float | None] = []
        for zi, p, c in zip(z, prompts, completions):
            prob = 1.0 / (1.0 + math.exp(-float(zi)))
            if abs(prob - 0.5) < self.abstain_band:
                out.append(None)
                continue
            value = {"probability": prob, "logodds": float(zi), "centered": 2 * prob - 1}[self.output]
            out.append(value + self._extra(p, c))
        return out
