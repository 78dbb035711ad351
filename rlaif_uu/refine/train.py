"""One training loop for every backbone: mini-batches drawn from P̃ and Ñ, best epoch kept.

A backbone (see :mod:`rlaif_uu.refine.backbones`) supplies a fresh model and the
inputs of a batch of rows; the model maps those inputs to one logit per row
(higher = more harmful). The risk is any callable ``(g_p, g_n) -> loss`` from
:mod:`rlaif_uu.refine.losses`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

Risk = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Backbone(Protocol):
    """What the refinement loop needs from a classifier family."""

    name: str
    epochs: int
    batch_size: int
    lr: float

    def prepare(self, texts: list[str]) -> None:
        """Precompute what the rows need (embeddings, tokenisation)."""

    def new_model(self, seed: int) -> torch.nn.Module:
        """A freshly initialised classifier from the base model."""

    def inputs(self, rows: np.ndarray) -> dict[str, Any]:
        """Model inputs for the given row positions (on the model's device)."""

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        """Write the classifier (safetensors) and its description to ``out_dir``."""


@dataclass
class FitResult:
    """What training produced: the model at its best epoch and the loss curves."""

    model: torch.nn.Module
    best_epoch: int
    best_val_loss: float
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _batches(pos: np.ndarray, neg: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Shuffle each set and split both into the same number of batches (proportional mix)."""
    n_batches = max(1, math.ceil((len(pos) + len(neg)) / batch_size))
    ps = np.array_split(rng.permutation(pos), n_batches)
    ns = np.array_split(rng.permutation(neg), n_batches)
    return list(zip(ps, ns))


def _is_4bit(model: torch.nn.Module) -> bool:
    return any(type(m).__name__ == "Linear4bit" for m in model.modules())


def predict(backbone: Backbone, model: torch.nn.Module, rows: np.ndarray, desc: str | None = None) -> np.ndarray:
    """Logits for the given rows, in batches, without gradients.

    A 4-bit model stays in train mode with its dropout modules switched off: a forward
    pass in ``eval()`` mode breaks later NF4 + LoRA training for good (measured here with bitsandbytes on CPU).
    """
    was_training = model.training
    quantized = _is_4bit(model)
    dropouts = [m for m in model.modules() if isinstance(m, torch.nn.Dropout)] if quantized else []
    saved = [d.p for d in dropouts]
    for d in dropouts:
        d.p = 0.0
    if not quantized:
        model.eval()
    out: list[np.ndarray] = []
    try:
        with torch.no_grad():
            chunks = np.array_split(rows, max(1, math.ceil(len(rows) / backbone.batch_size)))
            for chunk in tqdm(chunks, desc=desc, disable=None if desc else True, leave=False):
                if len(chunk):
                    out.append(model(**backbone.inputs(chunk)).float().cpu().numpy())
    finally:
        for d, p in zip(dropouts, saved):
            d.p = p
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def _risk_on(backbone: Backbone, model: torch.nn.Module, pos: np.ndarray, neg: np.ndarray, risk: Risk) -> float:
    g = torch.from_numpy(predict(backbone, model, np.concatenate([pos, neg])))
    return float(risk(g[: len(pos)], g[len(pos) :]))


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup_ratio: float | None) -> torch.optim.lr_scheduler.LambdaLR | None:
    """Linear warm-up over ``warmup_ratio`` of the steps, then linear decay to 0; ``None`` = constant lr."""
    if warmup_ratio is None:
        return None
    warm = max(1, int(round(warmup_ratio * steps)))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: (step + 1) / warm if step < warm else max(0.0, (steps - step) / (steps - warm + 1))
    )


def fit(
    backbone: Backbone,
    model: torch.nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    risk: Risk,
    val_risk: Risk,
    seed: int,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` on (P̃, Ñ) rows with ``risk``; keep the epoch with the lowest ``val_risk``.

    Optional backbone attributes: ``weight_decay`` (AdamW, default 0), ``warmup_ratio``
    (linear warm-up then linear decay; ``None``, the default, keeps the lr constant) and
    ``warm_start(model, train, val, risk, val_risk, seed)``, run first (its result is
    epoch 0 and is kept when no later epoch has a lower validation risk).

    Args:
        train: positions of the pseudo-harmful and pseudo-safe training rows.
        val: the held-out pseudo-labelled slice used to pick the epoch.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    result = FitResult(model, 0, float("inf"))
    warm_start = getattr(backbone, "warm_start", None)
    if warm_start is not None:  # e.g. LP-FT: the head starts from a linear probe; epoch 0 competes too
        warm_start(model, train, val, risk, val_risk, seed)
        result.val_loss.append(_risk_on(backbone, model, *val, val_risk))
        result.best_val_loss = result.val_loss[0]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=backbone.lr, weight_decay=getattr(backbone, "weight_decay", 0.0))
    best = _trainable_state(model)
    steps = backbone.epochs * len(_batches(*train, backbone.batch_size, rng))
    sched = _schedule(opt, steps, getattr(backbone, "warmup_ratio", None))
    model.train()
    with tqdm(total=steps, desc=desc, leave=False, unit="step", disable=None) as bar:
        for epoch in range(1, backbone.epochs + 1):
            losses = []
            for p_rows, n_rows in _batches(*train, backbone.batch_size, rng):
                g = model(**backbone.inputs(np.concatenate([p_rows, n_rows]))).float()
                loss = risk(g[: len(p_rows)], g[len(p_rows) :])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                losses.append(float(loss.detach()))
                bar.update(1)
            result.train_loss.append(float(np.mean(losses)))
            result.val_loss.append(_risk_on(backbone, model, *val, val_risk))
            bar.set_postfix(epoch=epoch, val=f"{result.val_loss[-1]:.4f}")
            if result.val_loss[-1] < result.best_val_loss:
                result.best_val_loss, result.best_epoch = result.val_loss[-1], epoch
                best = _trainable_state(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in best:
                p.copy_(best[n])
    return result
