"""``rlaif-uu reward export``: a refined classifier -> a TRL-loadable reward folder."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from rlaif_uu.config import load_config
from rlaif_uu.reward.pairwise import PairwiseProbe, format_pairwise


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


def run_export(cfg: ExportConfig) -> int:
    """Export and print where the reward folder is and how it was calibrated."""
    from rlaif_uu.reward.export import export_reward
    from rlaif_uu.reward.metadata import load_reward_metadata

    out = export_reward(cfg.source, cfg.out, gold=cfg.gold, texts=cfg.texts, distill_epochs=cfg.distill_epochs,
                        distill_lr=cfg.distill_lr, distill_swaps=cfg.distill_swaps, seed=cfg.seed, overwrite=cfg.overwrite,
                        pairwise=cfg.pairwise)
    meta = load_reward_metadata(out)
    src = meta["source"]
    how = f"distilled from the {src['backbone']} head (held-out fidelity {json.dumps(src['fidelity'])})" \
        if src["distilled"] else f"{src['backbone']} classifier, head negated"
    cal = meta["calibration"]
    acc = f", gold accuracy {cal['accuracy']:.3f}" if cal["accuracy"] is not None else ""
    print(f"wrote {out}: one logit, higher = safer; {how}; temperature {meta['temperature']:.3f} "
          f"on {cal['n_gold']} gold rows{acc}")
    if meta.get("pairwise"):
        print(format_pairwise(meta["pairwise"]))
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``reward`` (with ``export``) on the main parser."""
    p = subparsers.add_parser("reward", help="export a refined classifier as a reward model TRL can load",
                              description="Reward-model tools. `rlaif-uu reward export --help` for details.")
    sub = p.add_subparsers(dest="reward_verb", metavar="ACTION")
    e = sub.add_parser(
        "export", help="write a one-logit, higher-is-safer HF folder from `rlaif-uu refine --out`",
        description="Export a refined classifier as a reward model: loads with AutoModelForSequenceClassification "
        "(no trust_remote_code), one logit = log-odds of safe, chat template reproducing the training text, "
        "temperature fitted on the gold labels, within-prompt pairwise accuracy on held-out probe prompts "
        "(pairwise.enabled=false skips it), metadata + model card. A frozen-encoder head is distilled into a "
        "stock sequence classifier on the same encoder. Settings: defaults < --config YAML < flags < dotted overrides.",
    )
    e.add_argument("--from", dest="source", help="the refine --out folder (or its classifier/ folder)")
    e.add_argument("--out", help="reward folder to write")
    e.add_argument("--gold", help="gold rows for the calibration temperature (default: the refine run's gold)")
    e.add_argument("--texts", help="corpus to distil a frozen-encoder head on (default: FROM/refined.jsonl)")
    e.add_argument("--distill-epochs", type=int, help="distillation epochs for a frozen-encoder head (default 3)")
    e.add_argument("--seed", type=int, help="seed (default 0)")
    e.add_argument("--config", help="YAML file of settings")
    e.add_argument("--overwrite", action="store_true", default=None, help="replace an existing --out")
    e.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. distill_lr=5e-5")
    e.set_defaults(func=lambda a: run_export(load_config(
        ExportConfig, a.config,
        {k: getattr(a, k) for k in ("source", "out", "gold", "texts", "distill_epochs", "seed", "overwrite")},
        a.overrides)))
    p.set_defaults(func=lambda a: p.print_help() or 2)
