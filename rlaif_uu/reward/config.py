"""Settings of the reward stage (``rlaif-uu reward export``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from rlaif_uu.reward.pairwise import PairwiseProbe


@dataclass
class ExportConfig:
    """``rlaif-uu reward export`` settings."""

    source: str = MISSING  # refine --out folder (or its classifier/ folder)
    out: str = MISSING
    gold: str | None = None  # gold rows for the temperature (default: refine's --gold, else the gold_label column)
    texts: str | None = None  # corpus to distil a frozen-encoder head on (default: SOURCE/refined.jsonl)
    distill_epochs: int = 3
    distill_lr: float = 1e-4
    distill_swaps: int = 2  # distillation texts per row pairing its prompt with other rows' answers (within-prompt order)
    seed: int = 0
    overwrite: bool = False
    pairwise: PairwiseProbe = field(default_factory=PairwiseProbe)  # within-prompt pairwise accuracy on held-out probes
    license: str | None = None  # model card license (default: the base model's when known, else "other")
    datasets: list[str] = field(default_factory=list)  # model card: hub ids of the data the reward learned from
