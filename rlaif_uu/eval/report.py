"""``report.md`` and ``report.png`` from the ``report.json`` dict of :func:`rlaif_uu.eval.run.run_eval`."""

from __future__ import annotations

import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from rlaif_uu.data.io import atomic_path
from rlaif_uu.eval.degeneration import DEGENERATION, SCORER
from rlaif_uu.eval.metrics import CATALOGUE

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def fmt(est: dict[str, Any] | None) -> str:
    """``0.412 [0.35, 0.47]`` (``-`` when missing or empty)."""
    if not est or est.get("n", 0) == 0:
        return "-"
    return f"{est['value']:.3f} [{est['low']:.3f}, {est['high']:.3f}]"


def metric_rows(report: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any], bool]]:
    """``(suite, metric, scorer, estimate, higher_is_better)`` for every reported value, in report order."""
    out = []
    for suite, s in report["suites"].items():
        for metric, m in s["metrics"].items():
            for scorer, est in m["by_scorer"].items():
                out.append((suite, metric, scorer, est, m["higher_is_better"]))
    return out


def bounded(metric: str) -> bool:
    """Whether the metric's values lie in [0, 1] (the bar charts, drawn from 0 to 1, show only those)."""
    spec = CATALOGUE.get(metric) or DEGENERATION.get(metric)
    return spec is None or spec.bounded


def render_markdown(report: dict[str, Any]) -> str:
    """The human-readable report: settings, one table of metrics with CIs, scorer agreement."""
    g, b = report["generation"], report["bootstrap"]
    lines = [
        f"# Safety evaluation: {report['model']['name']}",
        "",
        f"- model identity: `{report['model']['identity']}`",
        f"- generation: backend {g['backend']}, temperature {g['temperature']}, top_p {g['top_p']}, "
        f"max_new_tokens {g['max_new_tokens']}, seed {g['seed']}, batch {g['batch_size']}"
        + (f", system prompt {g['system_prompt']!r}" if g.get("system_prompt") else ""),
        "- scorers: " + ", ".join(f"{n} (`{s['id']}`)" for n, s in report["scorers"].items()),
        f"- intervals: {b['method']} bootstrap, {int(b['level'] * 100)}%, B = {b['B']}, seed {b['seed']}",
        "- prompts per suite: " + ("all" if report["limit"] is None
                                   else f"a seeded subset of at most {report['limit']} (seed {report['limit_seed']})"),
        f"- wall time: {report['wall_seconds']:.0f} s" + (f"; command: `{report['command']}`" if report.get("command") else ""),
        "",
        "| suite (version, n) | metric | scorer | value [95% CI] | better |",
        "|---|---|---|---|---|",
    ]
    for suite, metric, scorer, est, hib in metric_rows(report):
        s = report["suites"][suite]
        lines.append(f"| {suite} (v{s['version']}, {s['n_prompts']}) | {metric} | {scorer} | {fmt(est)} | {'higher' if hib else 'lower'} |")
    if "degeneration" in report:
        lines += ["", (f"Scorer `{SCORER}`: degeneration measures of the answer text itself (no model): seq_rep_3 = share of "
                       "repeated word 3-grams within an answer (seq-rep-n of Welleck et al. 2019, arXiv:1908.04319), answer "
                       "length in words, and the share of answers identical to another prompt's answer (benign suites only). "
                       "`eval compare` flags a policy whose benign answers degenerate.")]
    pairs = [(suite, pair, a) for suite, s in report["suites"].items() for pair, a in s["agreement"].items()]
    if pairs:
        lines += ["", "Agreement between scorers on the per-prompt unsafe label (Cohen's κ; `-` = undefined, "
                  "one label only):", "", "| suite | scorers | κ | raw agreement | n |", "|---|---|---|---|---|"]
        for suite, pair, a in pairs:
            kappa = "-" if a["kappa"] is None else f"{a['kappa']:.3f}"
            agree = "-" if a["agreement"] is None else f"{a['agreement']:.3f}"
            lines.append(f"| {suite} | {pair.replace('|', ' vs ')} | {kappa} | {agree} | {a['n']} |")
    lines += ["", "Generation per suite (prompts generated now / taken from the cache; backend time spent generating "
              "them, whenever that was):", ""]
    lines += [f"- {n}: {s['generation']['generated']} / {s['generation']['cached']}; "
              f"{s['generation'].get('generation_seconds', s['generation']['seconds']):.0f} s" for n, s in report["suites"].items()]
    lines.append("")
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Horizontal bars (one per scorer) for every suite/metric with 95% CI whiskers."""
    rows = [r for r in metric_rows(report) if r[3].get("n", 0) > 0 and bounded(r[1])]
    groups = list(dict.fromkeys((r[0], r[1]) for r in rows))
    scorers = list(dict.fromkeys(r[2] for r in rows))
    in_group = {g: [r[2] for r in rows if (r[0], r[1]) == g] for g in groups}  # bars are centred on each group's label
    height = 0.8 / max(1, max((len(v) for v in in_group.values()), default=1))
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.3 * len(rows) + 0.2 * len(groups)))
    for j, scorer in enumerate(scorers):
        ys, xs, err = [], [], [[], []]
        for suite, metric, sc, est, _ in rows:
            if sc != scorer:
                continue
            members = in_group[(suite, metric)]
            ys.append(groups.index((suite, metric)) + (members.index(sc) - (len(members) - 1) / 2) * height)
            xs.append(est["value"])
            err[0].append(max(0.0, est["value"] - est["low"]))
            err[1].append(max(0.0, est["high"] - est["value"]))
        ax.barh(ys, xs, height=height, xerr=err, capsize=2, color=COLORS[j % len(COLORS)], label=scorer)
        for y, x, hi in zip(ys, xs, err[1]):
            ax.text(min(x + hi + 0.01, 0.93), y, f"{x:.2f}", va="center", fontsize=6)
    ax.set_yticks(range(len(groups)), [f"{s} · {m}" for s, m in groups], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.0), xlabel="rate / mean P(safe), 95% bootstrap CI")
    ax.set_title(f"{report['model']['name']}: safety metrics", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
