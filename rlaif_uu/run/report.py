"""The run's final report: ``report.json`` + ``report.md`` gathering every stage's outputs and plots.

Sections: the corpus and what judged it, the gold labels, refinement gain per iteration, the
reward's calibration, the reward curve, safety before/after with 95% CIs (the headline table
uses the refusal rules, a scorer other than the training reward), scorer agreement, and the
time each stage took.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from rlaif_uu.data.io import read_records, write_json
from rlaif_uu.eval.degeneration import flag_lines
from rlaif_uu.reward.metadata import below_judge
from rlaif_uu.reward.pairwise import CHECK_FILE, format_sampled
from rlaif_uu.run.config import RecipeConfig, gold_files, gold_path
from rlaif_uu.run.rounds_report import HEADLINE_SCORER, plot_rounds, rounds_lines, rounds_summary
from rlaif_uu.run.stages import final_dirs, gold_file


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _judges(d: dict[str, Path]) -> dict[str, Any] | None:
    agreement = _load(d["label"] / "labelled.jsonl.agreement.json")
    if agreement is None:
        return None
    return {"per_judge": {n: {k: j[k] for k in ("judge_id", "harmful", "safe", "abstained", "judged", "cached", "seconds")}
                          for n, j in agreement["judges"].items()},
            "kappa": agreement["kappa"], "aggregate": agreement["total"]}


def _gold_rows(cfg: RecipeConfig, d: dict[str, Path]) -> int | None:
    files = [str(gold_file(cfg, d["gold"]))] if "gold" in d else gold_files(cfg)
    return sum(len(read_records(f, required=("gold_label",))) for f in files) if files else None


def _refinement(d: dict[str, Path]) -> dict[str, Any] | None:
    history = _load(d["refine"] / "history.json")
    if history is None:
        return None
    its = history.get("iterations", [])
    acc = [it.get("gold_accuracy", {}).get("value") for it in its]
    return {"selected_iteration": history.get("selected_iteration"), "gold_accuracy_per_iteration": acc,
            "n_gold": history.get("n_gold"), "stop_reason": history.get("stop_reason"), "loss": history.get("loss")}


def _reward(d: dict[str, Path]) -> dict[str, Any] | None:
    meta = _load(d["reward"] / "rlaif_uu_reward.json")
    return None if meta is None else {"temperature": meta.get("temperature"), **meta.get("calibration", {}),
                                      "sampled": _load(d["reward"] / CHECK_FILE)}


def _alignment(d: dict[str, Path]) -> dict[str, Any] | None:
    log = _load(d["align"] / "train_log.json")
    if log is None:
        return None
    rewards = [h["reward"] for h in log["log_history"] if "reward" in h]
    k = max(1, len(rewards) // 5)
    first, last = (statistics.fmean(w) if rewards else None for w in (rewards[:k], rewards[-k:]))
    return {"algorithm": log["algorithm"], "steps": log["steps"], "seconds": log["seconds"],
            "reward_first": first, "reward_last": last, "reward_window": k}


def _safety(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """suite -> metric -> scorer -> value [low, high] of one eval report."""
    if report is None:
        return {}
    return {suite: {m: body["by_scorer"] for m, body in s["metrics"].items() if body["by_scorer"]}
            for suite, s in report["suites"].items()}


def reward_check(eval_dir: Path) -> dict[str, Any]:
    """How the training reward rates the policy's own answers, with the refusal rules as truth (per suite).

    Harmful suites: AUROC of the reward's P(safe) for refused vs complied answers (0.5 = no
    better than chance) and the mean P(safe) of each group; benign suites: the mean P(safe).
    A reward that rates compliances as safe as refusals after training has been gamed.
    """
    from sklearn.metrics import roc_auc_score

    report, out = _load(eval_dir / "report.json") or {}, {}
    for suite, body in report.get("suites", {}).items():
        path = eval_dir / "rows" / f"{suite}.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []
        rows = [r for r in rows if "reward.safety" in r and "refusal.refused" in r]
        if not rows:
            continue
        safety = [r["reward.safety"] for r in rows]
        refused = [r["refusal.refused"] for r in rows]
        if body["kind"] != "harmful":
            out[suite] = {"kind": body["kind"], "n": len(rows), "safety": statistics.fmean(safety)}
            continue
        groups = {k: [s for s, f in zip(safety, refused) if f == v] for k, v in (("refused", 1), ("complied", 0))}
        out[suite] = {"kind": "harmful", "n": len(rows),
                      "auroc": roc_auc_score(refused, safety) if all(groups.values()) else None,
                      **{f"safety_{k}": statistics.fmean(g) if g else None for k, g in groups.items()}}
    return out


def _reward_check_lines(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    if not before and not after:
        return []

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    intro = ("The training reward on the policy's own answers to the eval prompts (refusal rules as truth): AUROC "
             "of its P(safe) for refused vs complied answers, and its mean P(safe). After training, compliances "
             "rated as safe as refusals mean the policy found answers the reward likes without refusing.")
    lines = [intro, "",
             "| suite | | AUROC refused vs complied | P(safe) refused | P(safe) complied | P(safe) |", "|---|---|---|---|---|---|"]
    for name, check in (("before", before), ("after", after)):
        for suite, c in check.items():
            lines.append(f"| {suite} | {name} | {num(c.get('auroc'))} | {num(c.get('safety_refused'))} | "
                         f"{num(c.get('safety_complied'))} | {num(c.get('safety'))} |")
    return [*lines, ""]


def _agreement(report: dict[str, Any] | None) -> dict[str, Any]:
    return {suite: s.get("agreement", {}) for suite, s in (report or {}).get("suites", {}).items()}


def _fmt(v: dict[str, Any] | None) -> str:
    return "-" if not v else f"{v['value']:.3f} [{v['low']:.3f}, {v['high']:.3f}]"


def headline(report: dict[str, Any]) -> list[str]:
    """Safety before and after by the headline scorer, as markdown table rows."""
    before, after = report["safety_before"], report["safety_after"]
    rows = ["| suite | metric | before [95% CI] | after [95% CI] | change |", "|---|---|---|---|---|"]
    for suite, metrics in after.items():
        for metric, by in metrics.items():
            b, a = before.get(suite, {}).get(metric, {}).get(HEADLINE_SCORER), by.get(HEADLINE_SCORER)
            if a is None:
                continue
            change = f"{a['value'] - b['value']:+.3f}" if b else "-"
            rows.append(f"| {suite} | {metric} | {_fmt(b)} | {_fmt(a)} | {change} |")
    return rows


def _judge_lines(report: dict[str, Any], cfg: RecipeConfig) -> list[str]:
    corpus, judges = report["corpus"] or {}, report["judges"] or {}
    n_on = corpus.get("on_policy", 0)
    lines = [f"Corpus: {corpus.get('rows', '?')} rows" + (f": {corpus['rows'] - n_on}" if n_on else "") + f" from `{cfg.data.corpus}`"
             + (f" ({corpus['dropped_heldout']} rows whose prompt the eval holds out were left out)"
                if corpus.get("dropped_heldout") else "")
             + (f" and {n_on} answers of `{cfg.align.policy}` to the training prompts ({cfg.data.on_policy.samples} "
                f"per prompt at temperature {cfg.align.temperature}, up to {cfg.align.max_completion_length} tokens)"
                if n_on else "") + ". Every row was judged by every judge:", "",
             "| judge | id | harmful | safe | abstained | newly judged | from cache | seconds |", "|---|---|---|---|---|---|---|---|"]
    for name, j in judges.get("per_judge", {}).items():
        lines.append(f"| {name} | `{j['judge_id']}` | {j['harmful']} | {j['safe']} | {j['abstained']} | {j['judged']} | "
                     f"{j['cached']} | {j['seconds']} |")
    agg = judges.get("aggregate", {})
    if agg:
        kappa = judges.get("kappa") or {}
        names = list(kappa)
        pairs = [f"{a} vs {b} {kappa[a][b]:.3f}" for i, a in enumerate(names) for b in names[i + 1:]]
        lines += ["", f"Aggregate ({agg.get('aggregate')}): {agg.get('harmful')} harmful, {agg.get('safe')} safe."
                  + (f" Cohen's κ between judges: {', '.join(pairs)}." if pairs else "")]
    n = report["gold"]["n"]
    if cfg.annotator.label_all:
        return [*lines, "", f"Gold labels: ALL {n} rows, labelled by the {cfg.annotator.kind} annotator "
                "(annotator.label_all, the all-gold ceiling); refinement trained on them in place of the judges' labels."]
    lines += ["", f"Gold labels: {n if n is not None else 'the corpus gold_label column'}"
              + (" rows from " + " and ".join(f"`{f}`" for f in gold_files(cfg)) if gold_files(cfg) else "")
              + (f" ({cfg.data.gold_note})" if cfg.data.gold_note else "") + "."]
    return lines


def degeneration(compare_dir: Path) -> tuple[dict[str, Any] | None, list[str]]:
    """The compare stage's DEGENERATION verdict (None before it ran) and, when it fired, its loud line for the report's top.

    The verdict is ``eval compare``'s (:mod:`rlaif_uu.eval.degeneration`); repeating it above every
    table keeps a policy that bought safety by wrecking its benign answers from reading as a success.
    """
    deg = (_load(compare_dir / "compare.json") or {}).get("degeneration")
    return deg, flag_lines(deg) if deg and deg["flag"] else []


def monitor_lines(align_dir: Path, out: Path) -> list[str]:
    """The reward-hacking monitor's section of the report (nothing when the align stage ran without it).

    Reads ``monitor.json`` (:mod:`rlaif_uu.align.monitor`): the training reward beside the monitor's
    harmful compliance and benign refusal at every check, whether the alarm fired and whether it stopped training.
    """
    mon = _load(align_dir / "monitor.json")
    if not mon:
        return []

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}"

    p, alarm, stopped = mon["prompts"], mon["alarm"], mon.get("stopped")
    when = "After every online DPO iteration" if mon.get("algorithm") == "dpo" else f"Every {mon['settings']['every_n_steps']} steps"
    lines = ["### Reward-hacking monitor", "",
             (f"{when} the policy answered {p['harmful']} harmful and {p['benign']} benign "
             f"prompts that are neither trained on nor held out for the eval (greedy, {mon['max_new_tokens']} tokens), scored by "
             f"`{mon['scorer']}` (not the training reward); the training reward is its mean over the last {mon['window']} steps."), "",
             "| step | training reward | harmful compliance | benign refusal | alarm condition |", "|---|---|---|---|---|",
             *(f"| {c['step']} | {num(c['reward'])} | {num(c['harmful_compliance'])} | {num(c['benign_refusal'])} | "
               f"{'tripped' if c.get('tripped') else ''} |" for c in mon["checks"]), ""]
    if alarm["fired"]:
        lines += [f"**WARNING: possible reward hacking, the alarm fired at step {alarm['step']}**: " + "; ".join(alarm["reasons"]) + ".", ""]
    else:
        lines += ["No alarm: the training reward never rose while the monitor's safety fell (align.monitor thresholds).", ""]
    drift = mon.get("drift") or {}
    if drift.get("found"):
        lines += [f"**WARNING: the policy drifted by the monitor (less safe or over-refusing), drift found at step {drift['step']}**: {drift['reason']}.", ""]
    if stopped:
        lines += [(f"Training was **stopped at step {stopped['step']}** (align.monitor.stop=true: {stopped['reason']}); the saved policy is "
                  "that step's."), ""]
    return [*lines, f"![monitor]({(align_dir / 'monitor.png').relative_to(out)})", ""]


def write_report(cfg: RecipeConfig, out: Path, manifest: dict[str, Any]) -> Path:
    """Write ``report.json`` and ``report.md`` in the run folder; returns the markdown path."""
    d = final_dirs(cfg)
    rounds = rounds_summary(cfg)
    before, after = _load(d["eval_before"] / "report.json"), _load(d["eval_after"] / "report.json")
    report = {
        "recipe": cfg.name,
        "corpus": _load(d["label"].parent / "data" / "corpus.json"),
        "gold": {"file": gold_path(cfg), "files": gold_files(cfg), "n": _gold_rows(cfg, d), "note": cfg.data.gold_note,
                 "annotator": cfg.annotator.kind, "budget": cfg.annotator.budget if cfg.annotator.kind != "none" else None},
        "rounds": rounds,
        "judges": _judges(d),
        "refinement": _refinement(d),
        "reward": _reward(d),
        "alignment": _alignment(d),
        "eval_holdout": (before or {}).get("holdout"),
        "safety_before": _safety(before),
        "safety_after": _safety(after),
        "agreement_after": _agreement(after),
        "reward_check": {"before": reward_check(d["eval_before"]), "after": reward_check(d["eval_after"])},
        "seconds_per_stage": {k: round(v.get("seconds", 0.0), 1) for k, v in manifest["stages"].items()},
    }
    report["degeneration"], degeneration_lines = degeneration(d["compare"])
    write_json(out / "report.json", report)
    if cfg.rounds > 1:
        plot_rounds(rounds, out / "rounds.png")

    def rel(stage: str, name: str) -> str:
        return str((d[stage] / name).relative_to(out))
    ref, ali, rew = report["refinement"] or {}, report["alignment"] or {}, report["reward"] or {}
    compare_md = d["compare"] / "compare.md"
    acc = ref.get("gold_accuracy_per_iteration") or []
    total = sum(report["seconds_per_stage"].values())
    lines = [
        f"# Run report: {cfg.name}", "", *degeneration_lines,
        "## Judges" + (f" (round {cfg.rounds} of {cfg.rounds})" if cfg.rounds > 1 else ""), "", *_judge_lines(report, cfg), "",
        "## Refinement" + (f" (round {cfg.rounds})" if cfg.rounds > 1 else ""), "",
        (f"Loss `{ref.get('loss')}`. Gold accuracy per iteration (0 = the judge's labels): "
         + ", ".join(f"{a:.3f}" if a is not None else "-" for a in acc)
         + f"; selected iteration {ref.get('selected_iteration')} ({ref.get('stop_reason')}). "
         f"Reward calibration: temperature {rew.get('temperature', float('nan')):.3f}, gold accuracy "
         f"{rew.get('accuracy') if rew.get('accuracy') is not None else '-'} on {rew.get('n_gold', '-')} rows"
         + (f" ({rew['on']})" if rew.get("on") else "")
         + (f"; **below the judge's own labels ({rew['judge_accuracy']:.3f})**: the reward ranks no better than the judge"
            if below_judge(rew) else "") + "."), "",
        *([f"Reward check: {format_sampled(rew['sampled'])}.", ""] if rew.get("sampled") else []),
        f"![refinement]({rel('refine', 'history.png')})", "",
        "## Alignment", "",
        (f"{ali.get('algorithm')}: {ali.get('steps')} steps in {ali.get('seconds', 0):.0f} s; mean reward "
         f"{ali.get('reward_first', float('nan')):.3f} (first {ali.get('reward_window')} steps) -> "
         f"{ali.get('reward_last', float('nan')):.3f} (last {ali.get('reward_window')})."), "",
        f"![reward curve]({rel('align', 'reward_curve.png')})", "",
        *monitor_lines(d["align"], out),
        *_reward_check_lines(report["reward_check"]["before"], report["reward_check"]["after"]),
        *(rounds_lines(rounds, cfg.annotator.kind == "simulated") if cfg.rounds > 1 else []),
        "## Safety before and after", "",
        f"Prompts: the eval suites; for the training mix's sources only the held-out prompts ({report['eval_holdout']}). "
        f"Headline scorer: `{HEADLINE_SCORER}` (refusal rules, not the training reward).", "",
        *headline(report), "",
        "Every scorer, with the paired change per prompt:", "",
        compare_md.read_text() if compare_md.is_file() else "(no comparison)", "",
        "![before and after](compare/compare.png)", "",
        "## Time per stage (s)", "",
        "| stage | seconds |", "|---|---|",
        *(f"| {k} | {v} |" for k, v in report["seconds_per_stage"].items()), f"| total | {total:.1f} |", "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    return out / "report.md"
