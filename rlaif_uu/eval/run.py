"""``run_eval``: generate completions for every suite (cached), score them, write the report folder.

Output folder (written to a temp folder beside it and renamed at the end, so an error
leaves nothing partial)::

    report.json   settings, per-suite metrics with 95% bootstrap CIs (the safety metrics per scorer, and
                  the degeneration measures of the answer text, scorer ``text``), scorer agreement (κ)
    report.md     the same as tables
    report.png    bars with CI whiskers
    config.yaml   the resolved EvalConfig
    rows/<suite>.jsonl  per prompt: id, category, prompt, completion, every scorer's columns and ``text.*``

Completions live in an SQLite cache (default ``<asset cache>/eval-generations.sqlite``),
so rescoring with another judge or reward model never regenerates, and a killed run
resumes where it stopped.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu import __version__
from rlaif_uu.assets import cache_dir
from rlaif_uu.config import to_yaml
from rlaif_uu.data.io import atomic_dir, write_json, write_records
from rlaif_uu.errors import UserError
from rlaif_uu.eval.cache import GenerationCache, generate_cached
from rlaif_uu.eval.config import EvalConfig
from rlaif_uu.eval.degeneration import degeneration_columns, degeneration_metrics, report_info, row_columns
from rlaif_uu.eval.generation import GenerationConfig, Generator, build_generator, model_identity, settings_key
from rlaif_uu.eval.metrics import CATALOGUE, agreement, bootstrap_mean
from rlaif_uu.eval.report import plot_report, render_markdown
from rlaif_uu.eval.scorers import JudgeScorer, RefusalScorer, RewardScorer, Scores
from rlaif_uu.eval.suites import Suite, load_prompts, prompt_fingerprint, resolve_suites
from rlaif_uu.label.cache import VerdictCache
from rlaif_uu.label.run import build_judge, judge_names

log = logging.getLogger(__name__)
REPORT_SCHEMA = "rlaif_uu.eval/1"


def _scorers(cfg: EvalConfig) -> tuple[dict[str, Any], Any]:
    """Scorers by name (refusal, each judge, reward) and the verdict cache to close afterwards."""
    scorers: dict[str, Any] = {}
    reward = RewardScorer(cfg.reward) if cfg.reward else None  # fail fast on a bad folder, before generating
    scorers["refusal"] = RefusalScorer(classifier=cfg.refusal_classifier)
    vcache = None
    if cfg.judges:
        vcache = VerdictCache(cfg.judge_cache or cache_dir() / "judge-cache.sqlite")
        for name, jc in zip(judge_names(cfg.judges), cfg.judges):
            default_batch = max(32, 4 * jc.concurrency) if jc.kind == "openai" else (256 if jc.kind == "rules" else 8)
            scorers[f"judge:{name}"] = JudgeScorer(build_judge(jc, judge_responses=True), vcache, jc.batch_size or default_batch)
    if reward is not None:
        scorers["reward"] = reward
    return scorers, vcache


def _suite_metrics(suite: Suite, scores: dict[str, Scores], cfg: EvalConfig) -> dict[str, Any]:
    """Every metric of the suite for every scorer that provides its per-row field."""
    out: dict[str, Any] = {}
    for m in suite.metrics:
        spec = CATALOGUE[m.name]
        by: dict[str, Any] = {}
        for name, sc in scores.items():
            values = getattr(sc, spec.field)
            if values is not None and not np.isnan(values).all():
                by[name] = bootstrap_mean(values, cfg.bootstrap, cfg.bootstrap_seed).to_dict()
        out[m.name] = {"higher_is_better": m.higher_is_better, "description": spec.description, "by_scorer": by}
    return out


def _row_columns(name: str, sc: Scores, i: int) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for fld in ("unsafe", "refused", "safety"):
        values = getattr(sc, fld)
        if values is not None and not np.isnan(values[i]):
            cols[f"{name}.{fld}"] = round(float(values[i]), 6) if fld == "safety" else int(values[i])
    return cols


class _LazyGenerator:
    """Builds the backend on first call and keeps it for every suite."""

    def __init__(self, model: str, gen: GenerationConfig) -> None:
        self.model, self.gen = model, gen
        self.loaded: Generator | None = None

    def __call__(self) -> Generator:
        if self.loaded is None:
            log.info("loading %s (%s backend)", self.model, self.gen.backend)
            self.loaded = build_generator(self.model, self.gen)
        return self.loaded

    def close(self) -> None:
        if self.loaded is not None and hasattr(self.loaded, "close"):
            self.loaded.close()


def run_eval(cfg: EvalConfig, command: str | None = None) -> Path:
    """Evaluate ``cfg.model`` on ``cfg.suites``; returns the report folder.

    Args:
        cfg: the settings.
        command: the command line to record in the report (the CLI passes it).

    Raises:
        UserError: unknown suite, invalid suite file, bad prompt file, missing dataset package,
            a reward folder that is not a reward model, an existing ``out`` without ``overwrite``,
            or backend errors. Nothing is written to ``out`` then.
    """
    start = time.monotonic()
    out = Path(cfg.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise UserError(f"{out}: exists and is not empty; pass --overwrite or choose another --out")
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    suites = resolve_suites(cfg.suites)
    prompts = {s.name: load_prompts(s, cfg.limit, cfg.limit_seed, cfg.holdout.get(s.name, 0.0)) for s in suites}  # bad prompt files fail before any work
    identity = model_identity(cfg.model, cfg.generation)
    key = settings_key(identity, cfg.generation)
    scorers, vcache = _scorers(cfg)

    gcache = GenerationCache(cfg.cache or cache_dir() / "eval-generations.sqlite")
    gcache.register(key, {"model": identity, **asdict(cfg.generation)})
    lazy = _LazyGenerator(cfg.model, cfg.generation)
    report_suites: dict[str, Any] = {}
    rows_by_suite: dict[str, list[dict[str, Any]]] = {}
    try:
        for suite in suites:
            rows = prompts[suite.name]
            texts = [r["prompt"] for r in rows]
            gen = generate_cached(lazy, texts, gcache, key, cfg.generation.batch_size, cfg.progress, f"generate {suite.name}")
            scores = {n: sc(texts, gen.completions, suite.kind, cfg.progress) for n, sc in scorers.items() if sc.kind in suite.scorers}
            labels = {n: sc.unsafe for n, sc in scores.items() if not np.isnan(sc.unsafe).all()}
            degen = degeneration_columns(gen.completions)  # every eval, so a compare can tell whether answers degenerated
            report_suites[suite.name] = {
                "version": suite.version, "kind": suite.kind, "description": suite.description, "file": suite.file,
                "n_prompts": len(rows), "prompt_fingerprint": prompt_fingerprint(rows),
                "generation": {"cached": gen.n_cached, "generated": gen.n_generated, "seconds": round(gen.seconds, 2),
                               "generation_seconds": round(gen.generation_seconds, 1)},
                "metrics": _suite_metrics(suite, scores, cfg) | degeneration_metrics(suite.kind, degen, cfg.bootstrap, cfg.bootstrap_seed),
                "agreement": agreement(labels),
                "scorers": {n: sc.info for n, sc in scores.items()},
            }
            rows_by_suite[suite.name] = [
                {"id": r["id"], "category": r["category"], "prompt": r["prompt"], "completion": c}
                | {k: v for n, sc in scores.items() for k, v in _row_columns(n, sc, i).items()} | row_columns(degen, i)
                for i, (r, c) in enumerate(zip(rows, gen.completions))
            ]
    finally:
        lazy.close()
        gcache.close()
        if vcache is not None:
            vcache.close()
    report = {
        "schema": REPORT_SCHEMA, "rlaif_uu_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model": {"name": cfg.model, "identity": identity},
        "generation": {**asdict(cfg.generation), "settings_key": key},
        "scorers": {n: {"kind": sc.kind, "id": sc.scorer_id} for n, sc in scorers.items()},
        "bootstrap": {"method": "percentile", "B": cfg.bootstrap, "seed": cfg.bootstrap_seed, "level": 0.95},
        "degeneration": report_info(),
        "limit": cfg.limit, "limit_seed": cfg.limit_seed, "holdout": dict(cfg.holdout), "suites": report_suites,
        "wall_seconds": round(time.monotonic() - start, 1), "command": command,
    }
    _write(out, report, rows_by_suite, cfg)
    return out


def _write(out: Path, report: dict[str, Any], rows: dict[str, list[dict[str, Any]]], cfg: EvalConfig) -> None:
    """Write everything into a temp folder beside ``out``, then swap it in."""
    with atomic_dir(out) as tmp:
        write_json(tmp / "report.json", report)
        (tmp / "report.md").write_text(render_markdown(report), encoding="utf-8")
        plot_report(report, tmp / "report.png")
        (tmp / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
        for name, suite_rows in rows.items():
            write_records(tmp / "rows" / f"{name}.jsonl", suite_rows)
