"""Typed settings of the refine stage and the backbone factory."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from omegaconf import MISSING

from rlaif_uu.config import Tagged, build_tagged
from rlaif_uu.config_ranges import check_choice

if TYPE_CHECKING:  # torch loads only when a backbone is built
    from rlaif_uu.refine.train import Backbone

REFINE_COLUMNS = ("prompt", "response", "judge_label")  # what every refine input row needs
METHODS = ("robust_uu", "neighbourhood", "confident", "ensemble", "active")


@dataclass
class BaseBackboneConfig:
    """What every classifier family reads (``None`` = the family's default)."""

    kind: str = "frozen"
    model: str | None = None  # alias, local HF folder or hub id
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    max_length: int = 256


@dataclass
class FrozenBackboneConfig(BaseBackboneConfig):
    """``frozen``: a frozen sentence encoder's embeddings (cached) and a small trained head."""

    kind: str = "frozen"
    head: str = "linear"  # linear | mlp | factored | factored_mlp (P(harmful request) x P(answer complies))
    hidden: int = 256  # mlp / factored_mlp width
    segments: bool = True  # embed user and assistant turns apart and concatenate
    weight_decay: float | None = None  # AdamW weight decay
    standardize: bool = False  # z-score the embeddings before the head


@dataclass
class PeftBackboneConfig(BaseBackboneConfig):
    """What the trained families (encoder, causal) share: adapters and remote code."""

    peft: str | None = None  # none | lora | qlora
    lora_r: int = 8
    lora_alpha: int = 32
    trust_remote_code: bool = False


@dataclass
class EncoderBackboneConfig(PeftBackboneConfig):
    """``encoder``: a fine-tuned encoder (BERT family), full or LoRA."""

    kind: str = "encoder"
    pooling: str | None = None  # mean (frozen-probe architecture, default) | cls (sequence classifier)
    segments: bool = True  # mean pooling: embed user and assistant turns apart and concatenate
    warm_start: bool | None = None  # mean pooling: start the head from a linear probe (LP-FT)
    train_layers: int | None = None  # mean pooling, full: train only the top k layers, cache the rest
    weight_decay: float | None = None  # AdamW weight decay


@dataclass
class CausalBackboneConfig(PeftBackboneConfig):
    """``causal``: a causal LM with a classification head, LoRA or QLoRA (the paper's backbone)."""

    kind: str = "causal"


BACKBONE_KINDS: dict[str, type] = {"frozen": FrozenBackboneConfig, "encoder": EncoderBackboneConfig,
                                   "causal": CausalBackboneConfig}
BackboneConfig = FrozenBackboneConfig | EncoderBackboneConfig | CausalBackboneConfig
BACKBONE_TAG = Tagged(BACKBONE_KINDS, "frozen")


def backbone_config(kind: str = "frozen", **settings: Any) -> BackboneConfig:
    """The config of a classifier family (``backbone_config("encoder", pooling="cls")``).

    Raises:
        UserError: an unknown kind, or a setting that kind does not read (named with the kinds that do).
    """
    return build_tagged(BACKBONE_TAG, {"kind": kind, **settings}, "backbone")  # type: ignore[no-any-return]


@dataclass
class NeighbourhoodConfig:
    """``--method neighbourhood`` (SiDyP-style candidate retrieval + iterative refinement)."""

    k: int = 10  # neighbours among the rows judged clean
    certain: float = 0.8  # kNN share of the dominant label that makes it the only candidate
    two: float = 0.95  # summed share of the dominant two that makes them the candidates (>2 classes)
    noisy_threshold: float = 0.5  # GMM posterior of the high-distance component that flags a row
    checkpoints: int = 10  # training-dynamics snapshots
    rounds: int = 3  # dynamic-prior refinement rounds
    alpha: float = 0.5  # weight of the classifier against the prior per round
    distance: str = "signed"  # signed | cosine (the paper's)
    embedding_model: str = "all-minilm-l6-v2"  # sentence encoder for the neighbour search


@dataclass
class ConfidentConfig:
    """``--method confident`` (confident learning, prune by noise rate)."""

    folds: int = 5
    relabel: str = "pruned"  # pruned | all


@dataclass
class EnsembleConfig:
    """``--method ensemble``: several judges' ``<name>_label`` columns aggregated by estimated accuracy."""

    judges: list[str] | None = None  # judge names (default: every <name>_label column but judge/gold/refined/human)
    aggregate: str = "dawid_skene"  # dawid_skene | gold_accuracy | majority
    model: str = "two_coin"  # dawid_skene: two_coin | one_coin
    then: str = "robust_uu"  # robust_uu | classifier | none: what the aggregate labels feed
    allow_missing: bool = False  # let a judge's missing labels abstain instead of refusing the input


@dataclass
class ActiveConfig:
    """``--method active`` / ``rlaif-uu refine active``: the human-in-the-loop queue."""

    queue: str | None = None  # labelling queue file (.jsonl or .csv); its state sits beside it
    budget: int = 100  # rows a person labels in all
    batch: int = 25  # rows per round
    strategy: str = "mixed"  # mixed | uncertainty | random | stratified (half per judge label)
    w_uncertainty: float = 1.0
    w_model_judge: float = 1.0
    w_judges: float = 1.0
    human_weight: int = 3  # a human-labelled row counts this many times in training
    simulate_from: str | None = None  # file with id + gold_label: answer the queue from it (tests, benchmarks)
    answers: str | None = None  # a Label Studio JSON export (or id + human_label file) to merge into the queue


@dataclass
class RefineConfig:
    """``rlaif-uu refine`` settings."""

    input: str = MISSING
    out: str = MISSING
    method: str = "robust_uu"  # robust_uu | neighbourhood | confident | ensemble | active
    gold: str | None = None  # gold file (id + gold_label); default: the input's gold_label column
    loss: str = "robust_uu"  # robust_uu | uu | pn
    lam: float = -0.001
    iterations: int = 5
    val_fraction: float = 0.1
    flip_tol: float = 0.005
    select: str = "gold"  # gold | last
    margin_se: float = 0.0  # gold rule: SEs of paired gain over the judge an iteration needs
    guard_margin_se: float = 1.0  # neighbourhood / confident: SEs of gold gain over the judge their labels need (eval/results/gold_guard.md)
    combine: str = "judge"  # judge: relabel by classifier + judge verdict stacked on the gold rows | none: classifier alone
    fallback: str = "gold"  # gold: when the judge's labels would stand, a gold-only classifier that beats them replaces them | judge
    seed: int = 0
    overwrite: bool = False
    backbone: Any = field(default_factory=FrozenBackboneConfig, metadata={"tagged": BACKBONE_TAG})  # a BackboneConfig
    neighbourhood: NeighbourhoodConfig = field(default_factory=NeighbourhoodConfig)
    confident: ConfidentConfig = field(default_factory=ConfidentConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    active: ActiveConfig = field(default_factory=ActiveConfig)


LOOP_KEYS = ("loss", "lam", "iterations", "val_fraction", "flip_tol", "select", "margin_se", "combine", "fallback", "seed")


def loop_settings(cfg: RefineConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`rlaif_uu.refine.loop.refine` that ``cfg`` sets."""
    return {k: getattr(cfg, k) for k in LOOP_KEYS}


def build_backbone(cfg: BackboneConfig) -> Backbone:
    """Instantiate the backbone named by ``cfg.kind``; every setting of the kind's config is its constructor's."""
    from rlaif_uu.refine.backbones import (
        BACKBONES,  # torch: imported only when a backbone is built
    )

    check_choice("backbone.kind", cfg.kind, BACKBONES)
    kw = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "kind"}
    return BACKBONES[cfg.kind](**{k: v for k, v in kw.items() if v is not None})  # None: the family's default
