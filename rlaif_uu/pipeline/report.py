"""The run's final report: ``report.json`` + ``report.md`` gathering every stage's outputs and plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlaif_uu.data.io import write_json
from rlaif_uu.pipeline.recipe import RecipeConfig, stage_dirs


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _refinement(d: dict[str, Path]) -> dict[str, Any] | None:
    history = _load(d["refine"] / "history.json")
    if history is None:
        return None
    its = history.get("iterations", [])
    acc = [it.get("gold_accuracy", {}).get("value") for it in its]
    return {"selected_iteration": history.get("selected_iteration"), "gold_accuracy_per_iteration": acc,
            "n_gold": history.get("n_gold"), "stop_reason": history.get("stop_reason")}


def _alignment(d: dict[str, Path]) -> dict[str, Any] | None:
    log = _load(d["align"] / "train_log.json")
    if log is None:
        return None
    rewards = [h["reward"] for h in log["log_history"] if "reward" in h]
    return {"algorithm": log["algorithm"], "steps": log["steps"], "seconds": log["seconds"],
            "reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None}


def _safety(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """suite -> metric -> scorer -> value [low, high] of one eval report."""
    if report is None:
        return {}
    return {suite: {m: body["by_scorer"] for m, body in s["metrics"].items() if body["by_scorer"]}
            for suite, s in report["suites"].items()}


def write_report(cfg: RecipeConfig, out: Path, manifest: dict[str, Any]) -> Path:
    """Write ``report.json`` and ``report.md`` in the run folder; returns the markdown path."""
    d = stage_dirs(out)
    report = {
        "recipe": cfg.name,
        "gold": {"file": cfg.data.gold, "note": cfg.data.gold_note},
        "judges": [j.name or j.kind for j in cfg.label.judges],
        "refinement": _refinement(d),
        "reward": (_load(d["reward"] / "rlaif_uu_reward.json") or {}).get("calibration"),
        "alignment": _alignment(d),
        "safety_before": _safety(_load(d["eval_before"] / "report.json")),
        "safety_after": _safety(_load(d["eval_after"] / "report.json")),
        "seconds_per_stage": {k: round(v.get("seconds", 0.0), 1) for k, v in manifest["stages"].items()},
    }
    write_json(out / "report.json", report)
    ref, ali = report["refinement"] or {}, report["alignment"] or {}
    compare_md = d["compare"] / "compare.md"
    lines = [
        f"# Run report: {cfg.name}", "",
        f"Judges: {', '.join(report['judges'])}. Gold labels: {cfg.data.gold or 'the corpus gold_label column'}"
        + (f" ({cfg.data.gold_note})" if cfg.data.gold_note else "") + ".", "",
        "## Refinement", "",
        (f"Gold accuracy per iteration (0 = the judge's labels): {ref.get('gold_accuracy_per_iteration')}; "
         f"selected iteration {ref.get('selected_iteration')} ({ref.get('stop_reason')}). Plot: `refine/history.png`."), "",
        "## Alignment", "",
        (f"{ali.get('algorithm')}: {ali.get('steps')} steps in {ali.get('seconds', 0):.0f} s; mean reward "
         f"{ali.get('reward_first')} (first step) -> {ali.get('reward_last')} (last). Plot: `align/reward_curve.png`."), "",
        "## Safety before and after", "",
        compare_md.read_text() if compare_md.is_file() else "(no comparison)", "",
        "Plot: `compare/compare.png`.", "",
        "## Time per stage (s)", "",
        "| stage | seconds |", "|---|---|",
        *(f"| {k} | {v} |" for k, v in report["seconds_per_stage"].items()), "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"
