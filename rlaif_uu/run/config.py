"""The recipe (``rlaif-uu run``): one YAML with a section per stage, each section the stage's own config.

The run wires the stages' inputs and outputs (``label.input``, ``refine.input``/``gold``,
``reward.source``, ``align.reward``, ``eval.model``, every ``out``) under the run folder;
values given for those keys in a recipe are replaced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.eval.config import EvalConfig
from rlaif_uu.label.config import LabelConfig
from rlaif_uu.refine.config import RefineConfig
from rlaif_uu.reward.config import ExportConfig

WIRED = "(set by the run)"


@dataclass
class OnPolicySettings:
    """How many answers of the policy to each training prompt join the corpus (0: none)."""

    samples: int = 0  # answers per training prompt; sampled as GRPO samples (align.temperature, max_completion_length)
    seed: int = 0  # sample k uses seed + k
    check_prompts: int = 0  # dev prompts on which each exported reward is checked against the policy's own answers (0: off)


@dataclass
class AnnotatorSettings:
    """Who labels the on-policy rows each round picks, and how many labels the run may spend."""

    kind: str = "none"  # none | queue (a person) | file (pre-labelled) | simulated (scripted stand-in, for benchmarks)
    budget: int = 50  # gold rows in the whole run, data.gold rows included
    file: str | None = None  # kind=file: id + gold_label for every row a round may pick
    strategy: str = "mixed"  # which answers get labelled: mixed (LAUD's score) | uncertainty | random | stratified
    seed: int = 0
    label_all: bool = False  # the all-gold ceiling: every row labelled by the annotator, budget ignored


@dataclass
class DataSettings:
    """The run's inputs: the corpus to label and the gold labels refinement needs."""

    corpus: str = MISSING  # JSONL/CSV/Parquet with prompt, response (optionally id, gold_label), or builtin:safety
    gold: str | None = None  # gold file (id + gold_label, e.g. from `rlaif-uu refine sample-gold`); None: corpus column
    gold_on_policy: str | None = None  # gold labels of on-policy rows (ids onpolicy-r1-<k>-<prompt id>); joins gold when on_policy.samples > 0
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
    rounds: int = 1  # on-policy rounds: sample the policy, label, [gold], refine, reward, align, eval (see run/stages.py)
    annotator: AnnotatorSettings = field(default_factory=AnnotatorSettings)  # who labels each round's picked answers


def gold_files(cfg: RecipeConfig) -> list[str]:
    """The gold files refinement reads: ``data.gold``, then ``data.gold_on_policy`` when on-policy rows are on."""
    extra = [cfg.data.gold_on_policy] if cfg.data.gold_on_policy and cfg.data.on_policy.samples > 0 else []
    return ([cfg.data.gold] if cfg.data.gold else []) + extra


def gold_path(cfg: RecipeConfig) -> str | None:
    """The gold file round 1 starts from: the only gold file, or ``<run>/data/gold.jsonl`` joining several (None: none)."""
    files = gold_files(cfg)
    return None if not files else files[0] if len(files) == 1 else str(Path(cfg.out) / "data" / "gold.jsonl")

