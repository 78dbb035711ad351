"""``compare_reports``: two eval reports side by side, with CIs and the change per metric.

For every (suite, metric, scorer) both reports have, the table shows both estimates with
their 95% intervals, the change ``after - before``, whether it is an improvement given the
metric's direction, and a flag when the two intervals overlap (the change is then not
distinguishable from noise by this criterion). When both folders hold the per-prompt
rows of the same prompts, the change also gets a paired percentile-bootstrap 95% interval
over the per-prompt differences (same B and seed as the reports).

Reports made with different suite versions are refused (``allow_version_mismatch=True``
compares anyway, with a loud warning naming the suites); different prompt sets (e.g. one
run with ``--limit``) or generation settings are warned about in the output. A scorer whose id
differs between the reports (each run scored by its own reward model) is left out, with a warning.

The degeneration measures of every report (scorer ``text``: seq_rep_3, answer_length_words,
duplicate_answer_rate; see :mod:`rlaif_uu.eval.degeneration`) are compared like the rest,
and on benign suites they decide the DEGENERATION flag (``degeneration`` in compare.json, a loud
line in compare.md and the log) under :class:`~rlaif_uu.eval.degeneration.DegenerationThresholds`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from rlaif_uu.data.io import atomic_dir, atomic_path, write_json
from rlaif_uu.errors import UserError
from rlaif_uu.eval.degeneration import DEGENERATION, DegenerationThresholds, degeneration_flag, flag_lines
from rlaif_uu.eval.metrics import CATALOGUE, bootstrap_mean, ci_overlap
from rlaif_uu.eval.report import bounded, fmt, metric_rows

log = logging.getLogger(__name__)
SETTINGS = ("backend", "temperature", "top_p", "max_new_tokens", "seed", "system_prompt")


def load_report(folder: str | Path) -> dict[str, Any]:
    """``report.json`` of an eval folder.

    Raises:
        UserError: no such folder, no report.json, or not an eval report.
    """
    path = Path(folder) / "report.json"
    if not path.is_file():
        raise UserError(f"{folder}: not an eval report folder (no report.json); pass folders written by `rlaif-uu eval`")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(report, dict) or not str(report.get("schema", "")).startswith("rlaif_uu.eval/"):
        raise UserError(f"{path}: not an rlaif-uu eval report (no 'schema: rlaif_uu.eval/...')")
    return report


def _rows(folder: Path, suite: str) -> dict[str, dict[str, Any]]:
    path = folder / "rows" / f"{suite}.jsonl"
    if not path.is_file():
        return {}
    return {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines()) if r}


def _paired_change(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], column: str, boot: dict[str, Any]) -> dict[str, Any] | None:
    ids = [i for i in a if i in b and column in a[i] and column in b[i]]
    if not ids:
        return None
    diffs = np.array([float(b[i][column]) - float(a[i][column]) for i in ids])
    return bootstrap_mean(diffs, int(boot["B"]), int(boot["seed"])).to_dict()


def compare(before: dict[str, Any], after: dict[str, Any], before_dir: Path | None = None, after_dir: Path | None = None,
            allow_version_mismatch: bool = False, thresholds: DegenerationThresholds | None = None) -> dict[str, Any]:
    """The comparison as a dict (``rows``, ``warnings``, ``degeneration``, ``only_before``, ``only_after``).

    ``degeneration`` is :func:`rlaif_uu.eval.degeneration.degeneration_flag` of the rows under ``thresholds``.

    Raises:
        UserError: a suite with different versions (unless ``allow_version_mismatch``), or no suite in common.
    """
    sa, sb = before["suites"], after["suites"]
    common = [s for s in sa if s in sb]
    if not common:
        raise UserError(f"the reports share no suite (before: {', '.join(sa)}; after: {', '.join(sb)})")
    warnings: list[str] = []
    mismatched = [f"{s} (before v{sa[s]['version']}, after v{sb[s]['version']})" for s in common if sa[s]["version"] != sb[s]["version"]]
    if mismatched and not allow_version_mismatch:
        raise UserError("suite versions differ: " + "; ".join(mismatched) + ". Rerun both with the same suite files, or pass "
                        "--allow-version-mismatch to compare anyway")
    if mismatched:
        warnings.append("SUITE VERSIONS DIFFER, the numbers are not comparable: " + "; ".join(mismatched))
    for s in common:
        if sa[s]["prompt_fingerprint"] != sb[s]["prompt_fingerprint"]:
            warnings.append(f"{s}: different prompt sets (before n={sa[s]['n_prompts']}, after n={sb[s]['n_prompts']}; "
                            "e.g. another --limit); the change mixes prompt and model differences")
    diff = [f"{k} {before['generation'].get(k)} -> {after['generation'].get(k)}" for k in SETTINGS
            if before["generation"].get(k) != after["generation"].get(k)]
    if diff:
        warnings.append("generation settings differ: " + ", ".join(diff))
    ids = [{n: sc.get("id") for n, sc in r.get("scorers", {}).items()} for r in (before, after)]
    own = sorted(n for n in ids[0] if n in ids[1] and ids[0][n] != ids[1][n])
    warnings += [f"scorer '{n}' is not the same in both reports (before {ids[0][n]}, after {ids[1][n]}; e.g. each run "
                 "scored by its own reward): its rows are left out" for n in own]
    after_index = {(s, m, sc): (est, hib) for s, m, sc, est, hib in metric_rows(after) if sc not in own}
    per_prompt = {s: (_rows(before_dir, s), _rows(after_dir, s)) if before_dir and after_dir else ({}, {}) for s in common}
    rows = []
    for suite, metric, scorer, est_a, hib in metric_rows(before):
        if suite not in common or (suite, metric, scorer) not in after_index:
            continue
        est_b = after_index[(suite, metric, scorer)][0]
        if not est_a.get("n") or not est_b.get("n"):
            continue
        change = est_b["value"] - est_a["value"]
        spec = CATALOGUE.get(metric) or DEGENERATION.get(metric)
        column = f"{scorer}.{spec.field}" if spec else ""
        paired = _paired_change(*per_prompt[suite], column, after["bootstrap"])
        rows.append({"suite": suite, "metric": metric, "scorer": scorer, "higher_is_better": hib, "before": est_a, "after": est_b,
                     "change": round(change, 6), "improved": bool(change > 0) == hib if change != 0 else None,
                     "cis_overlap": ci_overlap(est_a, est_b), "paired_change": paired})
    return {"before": {"model": before["model"]["name"], "created": before.get("created")},
            "after": {"model": after["model"]["name"], "created": after.get("created")},
            "warnings": warnings, "rows": rows,
            "degeneration": degeneration_flag(rows, {s: sa[s].get("kind", "") for s in common}, thresholds),
            "only_before": [s for s in sa if s not in sb], "only_after": [s for s in sb if s not in sa]}


def render_markdown(result: dict[str, Any]) -> str:
    """The comparison as a markdown table."""
    lines = [f"# Safety comparison: {result['before']['model']} (before) vs {result['after']['model']} (after)", ""]
    lines += [f"> **WARNING: {w}**" for w in result["warnings"]] + ([""] if result["warnings"] else [])
    lines += flag_lines(result.get("degeneration"))
    lines += ["| suite | metric | scorer | before [95% CI] | after [95% CI] | change [paired 95% CI] | verdict |",
              "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        p = r["paired_change"]
        change = f"{r['change']:+.3f}" + (f" [{p['low']:+.3f}, {p['high']:+.3f}]" if p and p.get("n") else "")
        verdict = "no change" if r["improved"] is None else ("better" if r["improved"] else "worse")
        if r["cis_overlap"]:
            verdict += " (CIs overlap)"
        lines.append(f"| {r['suite']} | {r['metric']} ({'↑' if r['higher_is_better'] else '↓'}) | {r['scorer']} | "
                     f"{fmt(r['before'])} | {fmt(r['after'])} | {change} | {verdict} |")
    for side in ("only_before", "only_after"):
        if result[side]:
            lines.append(f"\nSuites only {side.split('_')[1]}: {', '.join(result[side])}")
    lines += ["", "↑/↓: higher/lower is better. \"CIs overlap\": the two 95% intervals overlap, so the change is not "
              "clearly distinguishable from sampling noise.", ""]
    return "\n".join(lines)


def plot_comparison(result: dict[str, Any], path: str | Path) -> None:
    """Paired horizontal bars (before/after) with CI whiskers and the change written beside them."""
    rows = [r for r in result["rows"] if bounded(r["metric"])]  # the x axis runs from 0 to 1; lengths in words stay in the table
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.55 * max(1, len(rows))))
    for k, (side, color) in enumerate((("before", "tab:gray"), ("after", "tab:blue"))):
        ys = [i + (k - 0.5) * 0.38 for i in range(len(rows))]
        xs = [r[side]["value"] for r in rows]
        err = [[max(0.0, r[side]["value"] - r[side]["low"]) for r in rows], [max(0.0, r[side]["high"] - r[side]["value"]) for r in rows]]
        ax.barh(ys, xs, height=0.38, xerr=err, capsize=2, color=color, label=f"{side}: {result[side]['model']}")
    for i, r in enumerate(rows):
        mark = "" if r["improved"] is None else ("better" if r["improved"] else "worse")
        ax.text(1.01, i, f"{r['change']:+.3f} {mark}{' (overlap)' if r['cis_overlap'] else ''}", va="center", fontsize=7,
                transform=ax.get_yaxis_transform())
    ax.set_yticks(range(len(rows)), [f"{r['suite']} · {r['metric']} · {r['scorer']}" for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.0), xlabel="value with 95% bootstrap CI")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    deg = result.get("degeneration") or {}
    if deg.get("flag"):
        ax.set_title("DEGENERATION: " + deg["reasons"][0][:105], fontsize=8, color="tab:red")
    elif result["warnings"]:
        ax.set_title("WARNING: " + result["warnings"][0][:110], fontsize=8, color="tab:red")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def compare_reports(before: str | Path, after: str | Path, out: str | Path | None = None, *,
                    allow_version_mismatch: bool = False, overwrite: bool = False,
                    thresholds: DegenerationThresholds | None = None) -> Path:
    """Write ``compare.json``, ``compare.md`` and ``compare.png``; returns the output folder.

    Args:
        before: report folder of the model before.
        after: report folder of the model after.
        out: output folder (default: ``<after's parent>/compare_<before>_vs_<after>``).
        allow_version_mismatch: compare suites of different versions, with a loud warning.
        overwrite: replace an existing non-empty ``out``.
        thresholds: when the DEGENERATION flag fires (defaults: :class:`DegenerationThresholds`).

    Raises:
        UserError: a folder that is not a report, different suite versions, no common suite, or an existing ``out``.
    """
    before, after = Path(before), Path(after)
    result = compare(load_report(before), load_report(after), before, after, allow_version_mismatch, thresholds)
    target = Path(out) if out else after.parent / f"compare_{before.name}_vs_{after.name}"
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise UserError(f"{target}: exists and is not empty; pass --overwrite or choose another --out")
    for w in result["warnings"]:
        log.warning("WARNING: %s", w)
    if result["degeneration"]["flag"]:
        log.warning("DEGENERATION: the after policy's benign answers degenerate: %s", "; ".join(result["degeneration"]["reasons"]))
    with atomic_dir(target) as tmp:
        write_json(tmp / "compare.json", result)
        (tmp / "compare.md").write_text(render_markdown(result), encoding="utf-8")
        plot_comparison(result, tmp / "compare.png")
    return target
