"""Typed settings of the refine stage and the backbone factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from rlaif_uu.errors import UserError


@dataclass
class BackboneConfig:
    """Classifier family and its training settings (``None`` = the family's default)."""

    kind: str = "frozen"  # frozen | encoder | causal
    model: Optional[str] = None  # alias, local HF folder or hub id
    head: str = "linear"  # frozen only: linear | mlp
    hidden: int = 256  # frozen mlp width
    segments: bool = True  # frozen, encoder (mean pooling): embed user and assistant turns apart and concatenate
    peft: Optional[str] = None  # encoder/causal: none | lora | qlora
    pooling: Optional[str] = None  # encoder: mean (frozen-probe architecture, default) | cls (sequence classifier)
    warm_start: Optional[bool] = None  # encoder (mean): start the head from a linear probe (LP-FT)
    train_layers: Optional[int] = None  # encoder (mean, full): train only the top k layers, cache the rest
    weight_decay: Optional[float] = None  # frozen, encoder: AdamW weight decay
    standardize: bool = False  # frozen: z-score the embeddings before the head
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    max_length: int = 256
    lora_r: int = 8
    lora_alpha: int = 32
    trust_remote_code: bool = False


@dataclass
class RefineConfig:
    """``rlaif-uu refine`` settings."""

    input: str = MISSING
    out: str = MISSING
    gold: Optional[str] = None  # gold file (id + gold_label); default: the input's gold_label column
    loss: str = "robust_uu"  # robust_uu | uu | pn
    lam: float = -0.001
    iterations: int = 5
    val_fraction: float = 0.1
    flip_tol: float = 0.005
    select: str = "gold"  # gold | last
    margin_se: float = 1.0  # gold rule: SEs of paired gain over the judge an iteration needs
    seed: int = 0
    overwrite: bool = False
    backbone: BackboneConfig = field(default_factory=BackboneConfig)


def build_backbone(cfg: BackboneConfig) -> Any:
    """Instantiate the backbone named by ``cfg.kind`` with the settings that are set."""
    from rlaif_uu.refine.backbones import (
        BACKBONES,  # torch: imported only when a backbone is built
    )

    if cfg.kind not in BACKBONES:
        raise UserError(f"backbone.kind '{cfg.kind}' is unknown; use one of {', '.join(BACKBONES)}")
    kw: dict[str, Any] = {"max_length": cfg.max_length}
    for key in ("model", "epochs", "batch_size", "lr"):
        if getattr(cfg, key) is not None:
            kw[key] = getattr(cfg, key)
    if cfg.kind == "frozen":
        kw.update(head=cfg.head, hidden=cfg.hidden, segments=cfg.segments, standardize=cfg.standardize)
    elif cfg.kind == "encoder":
        kw["segments"] = cfg.segments
        kw.update({k: getattr(cfg, k) for k in ("pooling", "warm_start", "train_layers") if getattr(cfg, k) is not None})
    if cfg.kind != "causal" and cfg.weight_decay is not None:
        kw["weight_decay"] = cfg.weight_decay
    if cfg.kind != "frozen":
        kw.update(lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, trust_remote_code=cfg.trust_remote_code)
        if cfg.peft is not None:
            kw["peft"] = cfg.peft
    return BACKBONES[cfg.kind](**kw)
