"""The rounds of a run side by side: per round its corpus, gold labels, refinement, training and safety, and a plot.

Round 0 is the starting policy (``eval_before``). Safety numbers are the headline scorer's
(the refusal rules, not any round's training reward) on the held-out eval prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlaif_uu.reward.pairwise import CHECK_FILE, sampled_cell
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.stages import build_stages, gold_file

HEADLINE_SCORER = "refusal"
PLOTTED = {"harmful": "harmful_compliance_rate", "benign": "refusal_rate"}


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _headline(eval_dir: Path) -> dict[str, dict[str, Any]]:
    """suite -> {kind, metric, value, low, high} of one eval folder, by the headline scorer."""
    report = _load(eval_dir / "report.json") or {}
    out = {}
    for suite, body in report.get("suites", {}).items():
        metric = PLOTTED.get(body.get("kind", ""))
        est = body.get("metrics", {}).get(metric, {}).get("by_scorer", {}).get(HEADLINE_SCORER) if metric else None
        if est:
            out[suite] = {"kind": body["kind"], "metric": metric, **{k: est[k] for k in ("value", "low", "high")}}
    return out


def rounds_summary(cfg: RecipeConfig) -> list[dict[str, Any]]:
    """One entry per round (round 0 = before training) with what each stage of it produced."""
    stages = build_stages(cfg)
    before = next(s for s in stages if s.key == "eval_before")
    out: list[dict[str, Any]] = [{"round": 0, "safety": _headline(before.dir)}]
    for r in range(1, cfg.rounds + 1):
        by_kind = {s.kind: s.dir for s in stages if s.round == r}
        corpus = _load(by_kind["label"].parent / "data" / "corpus.json") or {}
        history = _load(by_kind["refine"] / "history.json") or {}
        its, sel = history.get("iterations", []), history.get("selected_iteration")
        acc = its[sel].get("gold_accuracy", {}).get("value") if isinstance(sel, int) and sel < len(its) else None
        gold_rows = gold_file(cfg, by_kind["gold"]).read_text().splitlines() if "gold" in by_kind else []
        gold = [json.loads(x) for x in gold_rows if x.strip()]
        log = _load(by_kind["align"] / "train_log.json") or {}
        rewards = [h["reward"] for h in log.get("log_history", []) if "reward" in h]
        k = max(1, len(rewards) // 5)
        meta = _load(by_kind["reward"] / "rlaif_uu_reward.json") or {}
        out.append({
            "round": r, "corpus_rows": corpus.get("rows"), "on_policy_rows": corpus.get("on_policy"),
            "new_on_policy_rows": corpus.get("new_on_policy"),
            "gold_new": sum(g.get("gold_round") == r for g in gold), "gold_total": len(gold) or None,
            "gold_sources": sorted({g.get("gold_source", "data") for g in gold}),
            "refine_iteration": sel, "refine_gold_accuracy": acc,
            "reward_pairwise": meta.get("pairwise"),
            "reward_sampled": _load(by_kind["reward"] / CHECK_FILE),
            "train_reward_first": sum(rewards[:k]) / k if rewards else None,
            "train_reward_last": sum(rewards[-k:]) / k if rewards else None,
            "safety": _headline(by_kind["eval"]),
        })
    return out


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pairwise(p: dict[str, Any] | None) -> str:
    return "-" if not p else " / ".join(_num(p.get(k, {}).get("accuracy")) for k in ("harmful", "benign"))


def rounds_lines(summary: list[dict[str, Any]], simulated: bool) -> list[str]:
    """The markdown section: a table per round and the plot."""
    suites = sorted({s for r in summary for s in r["safety"]})
    head = ["round", "corpus rows (on-policy)", "gold new / total", "refine gold acc.", "reward pairwise acc. (harmful / benign)",
            "reward on own answers: acc. (spread)",
            "train reward first -> last",
            *(f"{s} {summary[0]['safety'].get(s, {}).get('metric', '')}" for s in suites)]
    lines = ["## Rounds", "",
             "Round 0 is the starting policy. Reward pairwise accuracy: how often the round's exported reward ranks a refusal "
             "above a compliance and an opener (harmful probe prompts) and a helpful answer above a refusal (benign), on "
             "prompts no round trains on; on own answers: the same order on the policy's sampled answers to development "
             "prompts (data.on_policy.check_prompts) and the reward's spread within a prompt. Safety: the refusal rules on held-out prompts, 95% CIs."
             + (" Gold labels of the rounds come from the **simulated** annotator (rlaif_uu/run/gold.py), not a person."
                if simulated else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summary:
        cells = [str(r["round"]), "-" if r["round"] == 0 else f"{r['corpus_rows']} ({r['on_policy_rows']})",
                 "-" if r["round"] == 0 else f"{r['gold_new']} / {r['gold_total'] or '-'}",
                 _num(r.get("refine_gold_accuracy")), _pairwise(r.get("reward_pairwise")), sampled_cell(r.get("reward_sampled")) or "-",
                 "-" if r["round"] == 0 else f"{_num(r['train_reward_first'])} -> {_num(r['train_reward_last'])}"]
        for s in suites:
            e = r["safety"].get(s)
            cells.append("-" if not e else f"{e['value']:.3f} [{e['low']:.2f}, {e['high']:.2f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, "", "![rounds](rounds.png)", ""]


def plot_rounds(summary: list[dict[str, Any]], path: Path) -> None:
    """Headline safety per suite over rounds (harmful compliance and benign refusal, lower is better), with CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for suite in sorted({s for r in summary for s in r["safety"]}):
        pts = [(r["round"], r["safety"][suite]) for r in summary if suite in r["safety"]]
        xs, es = [p[0] for p in pts], [p[1] for p in pts]
        ax.errorbar(xs, [e["value"] for e in es], yerr=[[e["value"] - e["low"] for e in es], [e["high"] - e["value"] for e in es]],
                    marker="o", capsize=3, label=f"{suite} ({es[0]['metric']})")
    ax.set_xlabel("round (0 = before training)")
    ax.set_ylabel("rate (lower is better)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks([r["round"] for r in summary])
    ax.legend(fontsize=7)
    ax.set_title("safety over rounds (refusal rules, held-out prompts)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
