"""``rlaif-uu run``: the stages of :mod:`rlaif_uu.run.stages`, one pass or ``rounds`` on-policy rounds.

Each stage writes its own folder under the run folder (atomically, as the stage verbs do)
and ``manifest.json`` records its status, config hash and seconds. A rerun skips the
finished stages whose hash did not change; ``from_stage`` reruns from a stage on; a
Ctrl-C (or a kill) leaves every finished stage in place, so the next run resumes at the
round and stage where it stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.run import run_align
from rlaif_uu.assets import resolve_model
from rlaif_uu.config import to_yaml
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.data.io import read_records, write_json
from rlaif_uu.errors import UserError
from rlaif_uu.eval.config import EvalConfig
from rlaif_uu.eval.suites import resolve_suites
from rlaif_uu.label.config import LabelConfig
from rlaif_uu.label.run import run_label
from rlaif_uu.refine.config import RefineConfig, build_backbone
from rlaif_uu.refine.run import run_refine
from rlaif_uu.reward.config import ExportConfig
from rlaif_uu.run.config import RecipeConfig, gold_files, gold_path
from rlaif_uu.run.data import builtin_name, write_corpus
from rlaif_uu.run.gold import ANNOTATORS, label_every_row, label_round
from rlaif_uu.run.report import headline, reward_check, write_report
from rlaif_uu.run.stages import Stage, build_stages, stage_hashes


def load_manifest(out: Path) -> dict[str, Any]:
    """The run's manifest (empty when the run folder is new)."""
    path = out / "manifest.json"
    if not path.is_file():
        return {"stages": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise UserError(f"{path}: corrupt manifest; delete it to rerun every stage") from None


def plan(cfg: RecipeConfig, from_stage: str | None = None) -> list[tuple[str, str, str]]:
    """``(stage key, 'run' | 'skip', reason)`` for every stage.

    ``from_stage``: a stage key (``round-2/align``) or a kind (``align``: its first stage) to rerun from.
    """
    stages = build_stages(cfg)
    keys = [s.key for s in stages]
    if from_stage is not None and from_stage not in keys:
        kinds = [s.key for s in stages if s.kind == from_stage or s.key.endswith("/" + from_stage)]
        if not kinds:
            raise UserError(f"--from '{from_stage}' is not a stage; use one of {', '.join(keys)}")
        from_stage = kinds[0]
    hashes = stage_hashes(stages, cfg)
    done = load_manifest(Path(cfg.out))["stages"]
    out = []
    forced = False
    for s in stages:
        forced = forced or s.key == from_stage
        prev = done.get(s.key, {})
        if forced:
            out.append((s.key, "run", f"--from {from_stage}"))
        elif prev.get("status") == "done" and prev.get("hash") == hashes[s.key] and s.dir.exists():
            out.append((s.key, "skip", f"done, config unchanged ({hashes[s.key]})"))
        else:
            why = "config or input changed" if prev.get("status") == "done" else (prev.get("status") or "new")
            out.append((s.key, "run", why))
    return out


def validate(cfg: RecipeConfig) -> None:
    """Check every input path, model and suite without running anything (the ``--dry-run``)."""
    if cfg.rounds > 1 and cfg.data.on_policy.samples < 1:
        raise UserError(f"rounds={cfg.rounds} needs the policy's answers each round: set data.on_policy.samples >= 1")
    check_choice("annotator.kind", cfg.annotator.kind, ANNOTATORS)
    if cfg.annotator.kind != "none" and cfg.data.on_policy.samples < 1:
        raise UserError(f"annotator.kind={cfg.annotator.kind} labels the policy's answers: set data.on_policy.samples >= 1")
    if cfg.annotator.label_all and cfg.annotator.kind == "none":
        raise UserError("annotator.label_all needs an annotator: set annotator.kind to simulated, file or queue")
    if cfg.annotator.kind == "file" and not cfg.annotator.file:
        raise UserError("annotator.kind=file needs annotator.file (id + gold_label)")
    if cfg.refine.method == "active":
        raise UserError("refine.method=active waits for a person between rounds, so a recipe cannot run it: run "
                        "`rlaif-uu refine active` by hand, then set data.gold to the answered queue")
    if builtin_name(cfg.data.corpus) is None:
        read_records(cfg.data.corpus, required=("prompt",))
    for gold in gold_files(cfg):
        read_records(gold, required=("gold_label",))
    for judge in cfg.label.judges:
        if judge.kind in ("transformers", "vllm", "embedding") and judge.model:
            resolve_model(judge.model)
    resolve_model(build_backbone(cfg.refine.backbone).model_name)
    resolve_model(cfg.align.policy)
    resolve_suites(list(cfg.eval.suites))
    if cfg.launch.accelerate_config and not Path(cfg.launch.accelerate_config).is_file():
        raise UserError(f"launch.accelerate_config: {cfg.launch.accelerate_config} not found (see recipes/accelerate/)")


def launch_command(cfg: RecipeConfig, align_yaml: Path) -> list[str]:
    """The ``accelerate launch`` command that runs the align stage from ``align_yaml``."""
    la = cfg.launch
    procs = ["--num_processes", str(la.num_processes)] if la.num_processes else []
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(la.accelerate_config), *procs,
            *la.args, "-m", "rlaif_uu", "align", "--config", str(align_yaml)]


def _launch_align(stage: Any, cfg: RecipeConfig) -> None:
    align_yaml = Path(stage.out).parent / "data" / "align.yaml"
    align_yaml.parent.mkdir(parents=True, exist_ok=True)
    align_yaml.write_text(to_yaml(stage))
    cmd = launch_command(cfg, align_yaml)
    print("launching:", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, check=False).returncode
    if code != 0:
        raise UserError(f"align under accelerate launch exited with {code} (its output is above); "
                        f"fix it and rerun: finished stages are kept")


def _label(stage: Stage, cfg: RecipeConfig) -> None:
    x = stage.extra
    write_corpus(cfg, Path(stage.config.input), x["policy"], x["prompts"], stage.round, x["previous_corpus"])
    run_label(stage.config)


def _gold(stage: Stage, cfg: RecipeConfig) -> None:
    c = stage.config
    if c.get("all"):
        label_every_row(cfg, c["round"], Path(c["labelled"]), Path(c["out"]), Path(c["queue"]))
        return
    label_round(cfg, c["round"], c["n"], Path(c["labelled"]), c["previous_gold"], Path(c["out"]), Path(c["queue"]))


def _refine(stage: Stage, cfg: RecipeConfig) -> None:
    if stage.config.gold == gold_path(cfg) and len(gold_files(cfg)) > 1:  # the gold files joined into one
        from rlaif_uu.data.io import read_records, write_records

        write_records(stage.config.gold, [r for f in gold_files(cfg) for r in read_records(f, required=("gold_label",))])
    run_refine(stage.config)


def _reward(stage: Stage, cfg: RecipeConfig) -> None:
    from rlaif_uu.reward.export import run_export

    run_export(stage.config)
    if cfg.data.on_policy.check_prompts > 0 and cfg.align.reward != "rules":  # the rules arm never trains on this reward
        from rlaif_uu.reward.pairwise import CHECK_FILE, format_sampled
        from rlaif_uu.run.on_policy import check_reward

        result = check_reward(cfg, stage.extra["policy"], stage.extra["prompts"], Path(stage.config.out))
        write_json(Path(stage.config.out) / CHECK_FILE, result)
        print(f"reward check: {format_sampled(result)}")


def _eval(stage: Stage, cfg: RecipeConfig) -> None:
    from rlaif_uu.eval.run import run_eval

    run_eval(stage.config)
    for suite, c in reward_check(Path(stage.config.out)).items():  # an early warning, before GRPO spends its time
        if c.get("auroc") is not None:
            print(f"reward check on {suite}: AUROC {c['auroc']:.3f} for the policy's refusals vs compliances "
                  f"(P(safe) {c['safety_refused']:.3f} vs {c['safety_complied']:.3f}; 0.5 = chance)")


def _align(stage: Stage, cfg: RecipeConfig) -> None:
    if cfg.launch.accelerate_config:
        _launch_align(stage.config, cfg)
        return

    run_align(stage.config)


def _compare(stage: Stage, cfg: RecipeConfig) -> None:
    from rlaif_uu.eval.compare import compare_reports

    c = stage.config
    compare_reports(c["before"], c["after"], c["out"], overwrite=True)


@dataclass(frozen=True)
class StageKind:
    """A row of the stage table: a kind of stage, the config it runs with, what runs it, what it reads and writes.

    :func:`rlaif_uu.run.stages.build_stages` wires each stage (its config's inputs and outputs under the run
    folder and its upstream stages); the run loop looks its runner up here. A new kind of stage is a row here
    and its place in ``build_stages``.
    """

    name: str
    config: type  # the config object a stage of this kind carries (``dict``: the wiring of a stage with no API config)
    run: Callable[[Stage, RecipeConfig], None]
    reads: str
    writes: str


STAGE_KINDS: dict[str, StageKind] = {k.name: k for k in (
    StageKind("label", LabelConfig, _label, "the corpus; from round 2 the policy's answers too", "label/labelled.jsonl"),
    StageKind("gold", dict, _gold, "this round's labelled rows, the annotator", "gold/gold.jsonl (or labelled.jsonl)"),
    StageKind("refine", RefineConfig, _refine, "labelled rows, gold rows", "refine/ (refined.jsonl, the classifier)"),
    StageKind("reward", ExportConfig, _reward, "refine/", "reward/ (a sequence-classification folder)"),
    StageKind("eval", EvalConfig, _eval, "a policy, reward/", "eval_before/, eval_after/ or round-r/eval/"),
    StageKind("align", AlignConfig, _align, "round r-1's policy, reward/", "align/policy/"),
    StageKind("compare", dict, _compare, "eval_before/, the last eval", "compare/"),
)}


def run_recipe(cfg: RecipeConfig, from_stage: str | None = None, dry_run: bool = False) -> Path:
    """Run (or with ``dry_run`` only validate and print) the recipe; returns the run folder."""
    out = Path(cfg.out)
    steps = plan(cfg, from_stage)
    validate(cfg)
    print(f"recipe '{cfg.name}' -> {out}")
    for i, (name, action, why) in enumerate(steps, 1):
        print(f"  [{i}/{len(steps)}] {name:<11} {action:<4} ({why})")
    if dry_run:
        print("dry run: every path, model and suite checked; nothing was run")
        return out
    stages = {s.key: s for s in build_stages(cfg)}
    hashes = stage_hashes(list(stages.values()), cfg)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    manifest["recipe"] = cfg.name
    for i, (name, action, _) in enumerate(steps, 1):
        if action == "skip":
            continue
        print(f"== [{i}/{len(steps)}] {name}")
        entry: dict[str, Any] = {"status": "running", "hash": hashes[name], "started": time.time()}
        manifest["stages"][name] = entry
        write_json(out / "manifest.json", manifest)
        start = time.perf_counter()
        try:
            STAGE_KINDS[stages[name].kind].run(stages[name], cfg)
        except BaseException as exc:
            entry.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                         seconds=time.perf_counter() - start)
            write_json(out / "manifest.json", manifest)
            raise
        entry.update(status="done", seconds=time.perf_counter() - start, finished=time.time())
        write_json(out / "manifest.json", manifest)

    report = write_report(cfg, out, manifest)
    print("\n".join(headline(json.loads((out / "report.json").read_text()))))
    print(f"run finished: {report}")
    return out
