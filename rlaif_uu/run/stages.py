"""The run as a list of stages: one pass, or ``rounds: K`` on-policy rounds.

One round (the default) is the classic pipeline, each stage in its own folder of the run::

    label -> [gold] -> refine -> reward -> eval_before -> align -> eval_after -> compare

With ``rounds: K > 1`` (the iterated online RLHF pattern, as in RLHFlow's "RLHF Workflow: From
Reward Modeling to Online RLHF", arXiv:2405.07863), round r lives in ``round-<r>/`` and

1. ``label``: samples ``data.on_policy.samples`` answers of the *current* policy (round r−1's,
   the starting policy in round 1) to round r's training prompts, appends them to the corpus
   of round r−1 (earlier rows stay) and labels everything (verdicts cached: only new rows are judged);
2. ``gold``: spends round r's share of the human budget on its new answers
   (:mod:`rlaif_uu.run.gold`), when an annotator is set;
3. ``refine`` -> ``reward``: refines the labels and exports round r's reward;
4. ``align``: GRPO from round r−1's policy against round r's reward;
5. ``eval``: the held-out safety eval of round r's policy.

``eval_before`` runs once (after round 1's reward) and ``compare`` compares it with the last
round's eval. Each stage's hash covers its config, its inputs and its upstream stages' hashes,
so the manifest resumes at the round and stage where a run stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlaif_uu.align.prompts import mix_sources
from rlaif_uu.config import to_yaml
from rlaif_uu.data.io import read_records
from rlaif_uu.run.config import RecipeConfig, gold_files, gold_path
from rlaif_uu.run.data import corpus_digest
from rlaif_uu.run.gold import round_budgets
from rlaif_uu.run.on_policy import generation_config


@dataclass(frozen=True)
class Stage:
    """One step of the run: what it is, where it writes, its config and what it depends on."""

    key: str  # manifest key: "label" in a one-round run, "round-2/label" with rounds
    kind: str  # label | gold | refine | reward | eval | align | compare
    round: int  # 1..K; 0 for eval_before and compare
    dir: Path
    config: Any  # the stage's own config object, inputs and outputs wired under the run folder
    deps: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific wiring (corpus files, policy, budget)


def round_dir(cfg: RecipeConfig, r: int) -> Path:
    """Round r's folder: the run folder itself in a one-round run."""
    return Path(cfg.out) if cfg.rounds == 1 else Path(cfg.out) / f"round-{r}"


def gold_file(cfg: RecipeConfig, gold_dir: Path) -> Path:
    """What a gold stage writes: the gold rows so far, or (``annotator.label_all``) every row with the annotator's label."""
    return gold_dir / ("labelled.jsonl" if cfg.annotator.label_all else "gold.jsonl")


def _key(cfg: RecipeConfig, r: int, name: str) -> str:
    return name if cfg.rounds == 1 else f"round-{r}/{name}"


def _gold_already(cfg: RecipeConfig) -> int:
    return sum(len(read_records(f, required=("gold_label",))) for f in gold_files(cfg))


def build_stages(cfg: RecipeConfig) -> list[Stage]:
    """Every stage of the run in order (see the module docstring)."""
    out = Path(cfg.out)
    ann = cfg.annotator
    budgets = round_budgets(ann.budget, _gold_already(cfg), cfg.rounds) if ann.kind != "none" else [0] * cfg.rounds
    ps = cfg.align.prompts
    holdout = {s: ps.holdout for s in mix_sources(ps) if ps.holdout > 0} | dict(cfg.eval.holdout)
    stages: list[Stage] = []
    policy, corpus_prev, gold, prev = cfg.align.policy, None, gold_path(cfg), {"align": (), "gold": ()}
    for r in range(1, cfg.rounds + 1):
        d = round_dir(cfg, r)
        mix = dataclasses.replace(ps, seed=ps.seed + r - 1)  # each round trains on (and samples) other prompts
        labelled = d / "label" / "labelled.jsonl"
        label = dataclasses.replace(cfg.label, input=str(d / "data" / "corpus.jsonl"), out=str(labelled), overwrite=True)
        stages.append(Stage(_key(cfg, r, "label"), "label", r, d / "label", label, prev["align"],
                            {"policy": policy, "prompts": mix, "previous_corpus": corpus_prev}))
        label_key = stages[-1].key
        train_on = labelled
        if ann.label_all:  # the all-gold ceiling: refinement trains on the annotator's label of every row
            train_on = gold_file(cfg, d / "gold")
            spec = {"round": r, "all": True, "labelled": str(labelled), "out": str(train_on),
                    "queue": str(out / "gold_queue" / f"round-{r}.csv"), "annotator": to_yaml(ann)}
            stages.append(Stage(_key(cfg, r, "gold"), "gold", r, d / "gold", spec, (label_key,)))
            label_key = stages[-1].key
        elif budgets[r - 1] > 0:
            new_gold = gold_file(cfg, d / "gold")
            spec = {"round": r, "n": budgets[r - 1], "labelled": str(labelled), "previous_gold": gold, "out": str(new_gold),
                    "queue": str(out / "gold_queue" / f"round-{r}.csv"), "annotator": to_yaml(ann)}
            stages.append(Stage(_key(cfg, r, "gold"), "gold", r, d / "gold", spec, (label_key, *prev["gold"])))
            gold, prev["gold"] = str(new_gold), (stages[-1].key,)
        refine = dataclasses.replace(cfg.refine, input=str(train_on), gold=gold, out=str(d / "refine"), overwrite=True)
        stages.append(Stage(_key(cfg, r, "refine"), "refine", r, d / "refine", refine, (label_key, *prev["gold"])))
        reward = dataclasses.replace(cfg.reward, source=str(d / "refine"), out=str(d / "reward"), overwrite=True)
        stages.append(Stage(_key(cfg, r, "reward"), "reward", r, d / "reward", reward, (stages[-1].key,),
                            {"policy": policy, "prompts": mix}))
        reward_key = stages[-1].key
        if r == 1:
            before = dataclasses.replace(cfg.eval, model=cfg.align.policy, reward=str(d / "reward"),
                                         out=str(out / "eval_before"), holdout=holdout, overwrite=True)
            stages.append(Stage("eval_before", "eval", 0, out / "eval_before", before, (reward_key,)))
        rules = cfg.align.reward == "rules"  # the refusal rules as the reward (a benchmark's RL ceiling)
        align = dataclasses.replace(cfg.align, policy=policy, reward="rules" if rules else str(d / "reward"),
                                    out=str(d / "align"), prompts=mix, overwrite=True)
        stages.append(Stage(_key(cfg, r, "align"), "align", r, d / "align", align, (reward_key, *prev["align"])))
        prev["align"] = (stages[-1].key,)
        eval_dir = out / "eval_after" if cfg.rounds == 1 else d / "eval"
        after = dataclasses.replace(cfg.eval, model=str(d / "align" / "policy"), reward=str(d / "reward"),
                                    out=str(eval_dir), holdout=holdout, overwrite=True)
        stages.append(Stage(_key(cfg, r, "eval_after" if cfg.rounds == 1 else "eval"), "eval", r, eval_dir, after,
                            (stages[-1].key, reward_key)))
        policy, corpus_prev = str(d / "align" / "policy"), str(d / "data" / "corpus.jsonl")
    compare = {"before": str(out / "eval_before"), "after": str(stages[-1].dir), "out": str(out / "compare")}
    stages.append(Stage("compare", "compare", 0, out / "compare", compare, ("eval_before", stages[-1].key)))
    return stages


def wire(cfg: RecipeConfig) -> dict[str, Any]:
    """Each stage's config with its inputs and outputs set under ``cfg.out`` (stage key -> config object)."""
    return {s.key: s.config for s in build_stages(cfg)}


def final_dirs(cfg: RecipeConfig) -> dict[str, Path]:
    """The folders the report reads for the whole run: the last round's stages, eval_before and compare."""
    out = {}
    for s in build_stages(cfg):
        name = {"eval": "eval_before" if s.key == "eval_before" else "eval_after"}.get(s.kind, s.kind)
        out[name] = s.dir
    return out


def stage_hashes(stages: list[Stage], cfg: RecipeConfig) -> dict[str, str]:
    """A hash per stage of its config, its input files and its upstream stages' hashes.

    A change anywhere invalidates that stage and what depends on it, nothing else.
    """
    corpus = [corpus_digest(cfg.data.corpus), str(cfg.data.exclude_heldout), to_yaml(cfg.data.on_policy)]
    if cfg.data.on_policy.samples > 0:  # what the policy's answers depend on
        corpus.append(to_yaml(generation_config(cfg)))
    gold = "|".join(corpus_digest(f) for f in gold_files(cfg))
    out: dict[str, str] = {}
    for s in stages:
        text = repr(sorted(s.config.items())) if isinstance(s.config, dict) else to_yaml(s.config)
        if s.kind == "align":
            text += to_yaml(cfg.launch)
        if s.kind == "label":
            text += "|".join([*corpus, to_yaml(s.extra["prompts"]), s.extra["policy"] if s.round == 1 else ""])
        if s.kind in ("refine", "gold"):
            text += gold + (corpus_digest(cfg.annotator.file) if cfg.annotator.file else "")
        parts = [s.key, text, *(out[d] for d in s.deps)]
        out[s.key] = hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]
    return out
