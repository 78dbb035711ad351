"""An end-to-end recipe: one YAML with a section per stage, each section the stage's own config.

The run wires the stages' inputs and outputs (``label.input``, ``refine.input``/``gold``,
``reward.source``, ``align.reward``, ``eval.model``, every ``out``) under the run folder;
values given for those keys in a recipe are replaced.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.config import to_yaml
from rlaif_uu.evaluation.runner import EvalConfig
from rlaif_uu.judge.cli import LabelConfig
from rlaif_uu.pipeline import STAGES
from rlaif_uu.pipeline.on_policy import OnPolicySettings, generation_config
from rlaif_uu.refine.config import RefineConfig
from rlaif_uu.reward.cli import ExportConfig

WIRED = "(set by the run)"


@dataclass
class DataSettings:
    """The run's inputs: the corpus to label and the gold labels refinement needs."""

    corpus: str = MISSING  # JSONL/CSV/Parquet with prompt, response (optionally id, gold_label), or builtin:safety
    gold: str | None = None  # gold file (id + gold_label, e.g. from `rlaif-uu refine sample-gold`); None: corpus column
    gold_on_policy: str | None = None  # gold labels of on-policy rows (ids onpolicy-<k>-<prompt id>); joins gold when on_policy.samples > 0
    gold_note: str = ""  # where the gold labels come from (shown in the report)
    exclude_heldout: bool = True  # drop corpus rows whose prompt is an eval prompt held out of the training mix
    on_policy: OnPolicySettings = field(default_factory=OnPolicySettings)  # the policy's answers to the training prompts


@dataclass
class LaunchSettings:
    """How the align stage runs: in this process (default) or under ``accelerate launch``.

    With ``accelerate_config`` set, the run writes the align stage's config to
    ``<run>/data/align.yaml`` and runs ``accelerate launch --config_file CONFIG
    [--num_processes N] ARGS... -m rlaif_uu align --config <run>/data/align.yaml``
    (DDP or DeepSpeed over several GPUs); every other stage stays in this process.
    """

    accelerate_config: str | None = None  # e.g. recipes/accelerate/zero3.yaml
    num_processes: int | None = None  # default: the accelerate config's
    args: list[str] = field(default_factory=list)  # more `accelerate launch` arguments, e.g. [--main_process_port, "29501"]


@dataclass
class RecipeConfig:
    """``rlaif-uu run`` settings: the run folder, the data and one section per stage."""

    name: str = "run"
    out: str = MISSING  # the run folder: one sub-folder per stage + manifest.json + report.md
    data: DataSettings = field(default_factory=DataSettings)
    label: LabelConfig = field(default_factory=lambda: LabelConfig(input=WIRED, out=WIRED))
    refine: RefineConfig = field(default_factory=lambda: RefineConfig(input=WIRED, out=WIRED))
    reward: ExportConfig = field(default_factory=lambda: ExportConfig(source=WIRED, out=WIRED))
    align: AlignConfig = field(default_factory=lambda: AlignConfig(reward=WIRED, out=WIRED))
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(model=WIRED, out=WIRED))
    launch: LaunchSettings = field(default_factory=LaunchSettings)


def corpus_path(out: Path) -> Path:
    """The corpus the label stage judges (written by the run from ``data.corpus``)."""
    return out / "data" / "corpus.jsonl"


def gold_files(cfg: RecipeConfig) -> list[str]:
    """The gold files refinement reads: ``data.gold``, then ``data.gold_on_policy`` when on-policy rows are on."""
    extra = [cfg.data.gold_on_policy] if cfg.data.gold_on_policy and cfg.data.on_policy.samples > 0 else []
    return ([cfg.data.gold] if cfg.data.gold else []) + extra


def gold_path(cfg: RecipeConfig) -> str | None:
    """The gold file refine reads: the only gold file, or ``<run>/data/gold.jsonl`` joining several (None: none)."""
    files = gold_files(cfg)
    return None if not files else files[0] if len(files) == 1 else str(Path(cfg.out) / "data" / "gold.jsonl")


def stage_dirs(out: Path) -> dict[str, Path]:
    """Where each stage writes."""
    return {"label": out / "label", "refine": out / "refine", "reward": out / "reward", "eval_before": out / "eval_before",
            "align": out / "align", "eval_after": out / "eval_after", "compare": out / "compare"}


def wire(cfg: RecipeConfig) -> dict[str, Any]:
    """Each stage's config with its inputs and outputs set under ``cfg.out`` (stage -> config object)."""
    d = stage_dirs(Path(cfg.out))
    labelled = d["label"] / "labelled.jsonl"
    label = dataclasses.replace(cfg.label, input=str(corpus_path(Path(cfg.out))), out=str(labelled), overwrite=True)
    refine = dataclasses.replace(cfg.refine, input=str(labelled), gold=gold_path(cfg), out=str(d["refine"]), overwrite=True)
    reward = dataclasses.replace(cfg.reward, source=str(d["refine"]), out=str(d["reward"]), overwrite=True)
    align = dataclasses.replace(cfg.align, reward=str(d["reward"]), out=str(d["align"]), overwrite=True)
    ps = cfg.align.prompts
    holdout = {s: ps.holdout for s in (ps.harmful, ps.benign) if s and ps.holdout > 0} | dict(cfg.eval.holdout)
    before = dataclasses.replace(cfg.eval, model=cfg.align.policy, reward=str(d["reward"]), out=str(d["eval_before"]),
                                 holdout=holdout, overwrite=True)
    after = dataclasses.replace(before, model=str(d["align"] / "policy"), out=str(d["eval_after"]))
    compare = {"before": str(d["eval_before"]), "after": str(d["eval_after"]), "out": str(d["compare"])}
    return {"label": label, "refine": refine, "reward": reward, "eval_before": before, "align": align,
            "eval_after": after, "compare": compare}


DEPENDS = {"label": (), "refine": ("label",), "reward": ("refine",), "eval_before": ("reward",), "align": ("reward",),
           "eval_after": ("align",), "compare": ("eval_before", "eval_after")}


def stage_hashes(stages: dict[str, Any], cfg: RecipeConfig) -> dict[str, str]:
    """A hash per stage of its config, its input files and its upstream stages' hashes.

    A change anywhere invalidates that stage and what depends on it, nothing else.
    """
    from rlaif_uu.pipeline.data import corpus_digest

    ps = cfg.align.prompts
    corpus = [corpus_digest(cfg.data.corpus), str(cfg.data.exclude_heldout), to_yaml(ps), to_yaml(cfg.data.on_policy)]
    if cfg.data.on_policy.samples > 0:  # what the policy's answers depend on
        corpus += [cfg.align.policy, to_yaml(generation_config(cfg))]
    inputs = {"label": "|".join(corpus), "refine": "|".join(corpus_digest(f) for f in gold_files(cfg))}
    out: dict[str, str] = {}
    for name in STAGES:
        stage = stages[name]
        text = repr(sorted(stage.items())) if isinstance(stage, dict) else to_yaml(stage)
        if name == "align":
            text += to_yaml(cfg.launch)
        parts = [name, text, inputs.get(name, ""), *(out[d] for d in DEPENDS[name])]
        out[name] = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
    return out
