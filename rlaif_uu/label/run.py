"""The label stage (``rlaif-uu label``): judge a corpus with one or more judges, aggregate, report agreement.

Output: the input rows plus, for every judge ``NAME``, ``NAME_label`` (``harmful``/``safe``,
``None`` = abstained) and ``NAME_score``, and the aggregate ``judge_label``/``judge_score``
(the input of ``rlaif-uu refine``). Beside it, ``<out>.agreement.json``: Cohen's κ between
every pair of judges, each judge's id, template key and threshold, and the run summary.

Aggregate score: the mean over non-abstaining judges of ``z_j = (s_j - t_j) / sd_j``
(``t_j`` the judge's threshold, ``sd_j`` the standard deviation of its scores), so that
one judge alone reproduces its own labels. Aggregate label: ``majority`` of the judges'
labels (a tie goes by the sign of the aggregate score) or ``mean`` (aggregate score > 0).

Judges on the command line: ``--judge KIND[:key=value,...]``, e.g.
``--judge rules --judge openai:model=gpt-4o-mini,base_url=https://api.openai.com/v1,concurrency=4``.
``--judge request`` labels the request and the answer together (:mod:`rlaif_uu.label.request`):
a non-refusal to a harmful request is harmful.
"""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.assets import MINILM, QWEN_JUDGE, cache_dir
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.data.io import Row, check_output, read_records, write_json, write_records
from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import Judge, VerdictCache, judge_rows
from rlaif_uu.label.config import (
    AGGREGATES,
    KINDS,
    OUT_SUFFIXES,
    JudgeConfig,
    LabelConfig,
    default_judges,
    default_judges_note,
)
from rlaif_uu.label.templates import DEFAULT_TEMPLATE, PROMPT_TEMPLATE, check_template, get_template
from rlaif_uu.label.transformers_backend import TransformersJudge


def build_judge(cfg: JudgeConfig, judge_responses: bool) -> Judge:
    """Instantiate one judge from its config (models load lazily where the backend allows).

    Raises:
        UserError: unknown kind, missing settings, or a template that does not fit the task.
    """
    check_choice("judge kind", cfg.kind, KINDS)
    if cfg.kind == "rules":
        from rlaif_uu.label.cheap import RuleJudge

        return RuleJudge()
    if cfg.kind == "embedding":
        from rlaif_uu.label.cheap import EmbeddingJudge

        return EmbeddingJudge(cfg.model or MINILM, text=cfg.text)
    if cfg.kind == "request":
        from rlaif_uu.label.request import RequestJudge

        return RequestJudge(cfg.model or MINILM, refusal=cfg.refusal, content=cfg.content)
    template = get_template(cfg.template) if cfg.template else (DEFAULT_TEMPLATE if judge_responses else PROMPT_TEMPLATE)
    check_template(template, judge_responses)
    threshold = 0.0 if cfg.threshold is None else cfg.threshold
    if cfg.kind == "openai":
        from rlaif_uu.label.http_backend import OpenAIJudge

        if not cfg.model or not cfg.base_url:
            raise UserError("an openai judge needs model and base_url (--judge openai:model=NAME,base_url=http://HOST:PORT/v1)")
        return OpenAIJudge(cfg.model, cfg.base_url, template, judge_responses=judge_responses, threshold=threshold,
                           api_key_env=cfg.api_key_env, timeout=cfg.timeout, max_retries=cfg.max_retries,
                           concurrency=cfg.concurrency, logprobs=cfg.logprobs)
    if cfg.kind == "vllm":
        from rlaif_uu.label.vllm_backend import VLLMJudge
        from rlaif_uu.vllm_engine import EngineOptions

        if not cfg.model:
            raise UserError("a vllm judge needs model=HF_FOLDER_OR_HUB_ID (--judge vllm:model=smollm2-135m-instruct works offline)")
        return VLLMJudge(cfg.model, template, judge_responses=judge_responses, threshold=threshold,
                         max_field_tokens=cfg.max_field_tokens, **dataclasses.asdict(EngineOptions.from_config(cfg)))

    return TransformersJudge(cfg.model or QWEN_JUDGE, template=template, judge_responses=judge_responses,
                             threshold=threshold, max_field_tokens=cfg.max_field_tokens)


def judge_names(judges: list[JudgeConfig]) -> list[str]:
    """Column prefixes: ``name`` or the kind, with ``_2``, ``_3`` ... for repeats.

    Raises:
        UserError: a name that is not ``[a-z0-9_]``, is ``judge`` or repeats an explicit name.
    """
    names: list[str] = []
    for cfg in judges:
        base = cfg.name or cfg.kind
        if not re.fullmatch(r"[a-z0-9_]+", base) or base == "judge":
            raise UserError(f"judge name '{base}' must be lowercase [a-z0-9_] and not 'judge' (it prefixes output columns)")
        name, n = base, 1
        while name in names:
            if cfg.name:
                raise UserError(f"judge name '{base}' is used twice; give each judge its own name")
            n += 1
            name = f"{base}_{n}"
        names.append(name)
    return names


def labels_from_scores(scores: np.ndarray, threshold: float | None, fraction: float | None) -> tuple[np.ndarray, float]:
    """(labels with -1 for abstentions, the threshold used); ``fraction`` picks the threshold as a quantile."""
    ok = ~np.isnan(scores)
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise UserError(f"harmful_fraction must be in (0, 1), got {fraction}")
        threshold = float(np.quantile(scores[ok], 1.0 - fraction)) if ok.any() else 0.0
    t = 0.0 if threshold is None else float(threshold)
    return np.where(ok, (np.nan_to_num(scores, nan=t) > t).astype(int), -1), t


def is_constant(scores: np.ndarray) -> bool:
    """Whether scores do not vary beyond floating-point noise (fewer than two rows count as constant)."""
    if len(scores) < 2:
        return True
    return float(np.ptp(scores)) <= 1e-9 * max(1.0, float(np.max(np.abs(scores))))


def aggregate(scores: np.ndarray, labels: np.ndarray, thresholds: list[float], how: str) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate ``(n_judges, n_rows)`` scores/labels into (labels with -1 = none, z-score means with NaN = none)."""
    z = np.full(scores.shape, np.nan)
    for j, t in enumerate(thresholds):
        ok = ~np.isnan(scores[j])
        if is_constant(scores[j][ok]):  # rounding noise as the spread would blow z up; a constant judge only votes its side
            z[j][ok] = np.sign(scores[j][ok] - t)
        else:
            z[j][ok] = (scores[j][ok] - t) / float(np.std(scores[j][ok]))
    voted = (labels >= 0).sum(0)
    with np.errstate(invalid="ignore"):
        mean_z = np.where(voted > 0, np.nansum(z, 0) / np.maximum(voted, 1), np.nan)
        if how == "mean":
            label = (mean_z > 0).astype(int)
        else:
            share = (labels == 1).sum(0) / np.maximum(voted, 1)
            label = np.where(share == 0.5, (mean_z > 0).astype(int), (share > 0.5).astype(int))
    return np.where(voted > 0, label, -1), mean_z


def kappa_table(names: list[str], labels: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Cohen's κ between every pair of judges on the rows both labelled (``None`` when undefined)."""
    table: dict[str, dict[str, float | None]] = {a: {} for a in names}
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            both = (labels[i] >= 0) & (labels[j] >= 0)
            pair = labels[i][both], labels[j][both]
            if i == j or not both.any() or len(set(pair[0].tolist()) | set(pair[1].tolist())) < 2:
                table[a][b] = 1.0 if both.any() and i == j else None
                continue
            from sklearn.metrics import cohen_kappa_score  # here: importing sklearn costs seconds, one judge needs none

            table[a][b] = round(float(cohen_kappa_score(*pair)), 4)
    return table


def format_kappa(table: dict[str, dict[str, float | None]]) -> str:
    """The κ table as aligned text."""
    names = list(table)
    width = max(8, *(len(n) for n in names)) + 1
    lines = ["Cohen's kappa".ljust(width) + "".join(n.rjust(width) for n in names)]
    for a in names:
        lines.append(a.ljust(width) + "".join(("-" if v is None else f"{v:.3f}").rjust(width) for v in table[a].values()))
    return "\n".join(lines)


def run_label(cfg: LabelConfig) -> Path:
    """Judge, aggregate and write ``cfg.out`` and ``<out>.agreement.json`` (nothing is written on error)."""
    start = time.monotonic()
    out = Path(cfg.out)
    if out.suffix.lower() not in OUT_SUFFIXES:
        raise UserError(f"{out}: unknown output type '{out.suffix}'; use .jsonl, .csv or .parquet")
    check_output(out)
    if out.exists() and not cfg.overwrite:
        raise UserError(f"{out}: file exists; pass --overwrite or choose another --out")
    check_choice("aggregate", cfg.aggregate, AGGREGATES)
    if not cfg.judges:
        raise UserError("no judges configured; pass --judge KIND (one of " + ", ".join(KINDS) + ")")
    rows = read_records(cfg.input, required=("prompt",))
    judge_responses = not cfg.prompt_only
    if judge_responses and not any(r["response"].strip() for r in rows):
        raise UserError(f"{cfg.input}: no row has a response; pass --prompt-only to judge prompts alone")
    names = judge_names(cfg.judges)
    judges = [build_judge(jc, judge_responses) for jc in cfg.judges]
    if cfg.judges == default_judges():
        print(default_judges_note())
    prompts = [r["prompt"] for r in rows]
    responses = [r["response"] if judge_responses else "" for r in rows]
    cache = None if cfg.no_cache else VerdictCache(cfg.cache or cache_dir() / "judge-cache.sqlite")
    scores: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    thresholds: list[float] = []
    summary: dict[str, dict[str, Any]] = {}
    try:
        for name, jc, judge in zip(names, cfg.judges, judges):
            default_batch = max(32, 4 * jc.concurrency) if jc.kind == "openai" else {"rules": 256, "vllm": 64, "request": 64}.get(jc.kind, 8)
            run = judge_rows(judge, prompts, responses, cache=cache, batch_size=jc.batch_size or default_batch, progress=cfg.progress)
            lab, t = labels_from_scores(run.scores, jc.threshold, jc.harmful_fraction)
            answered = run.scores[~np.isnan(run.scores)]
            if len(answered) > 1 and is_constant(answered):
                print(f"warning: judge {name} gave every row the same score ({answered[0]:.4g}); it cannot tell rows apart "
                      "(check its template and model), so it only adds one vote to the aggregate")
            scores.append(run.scores)
            labels.append(lab)
            thresholds.append(t)
            errors = sum(1 for m in run.meta if m.get("abstain") == "error")
            summary[name] = {"judge_id": judge.judge_id, "template": judge.template_key, "threshold": t,
                             "harmful": int((lab == 1).sum()), "safe": int((lab == 0).sum()),
                             "abstained": run.n_abstained - errors, "errors": errors, "cached": run.n_cached,
                             "judged": run.n_judged, "seconds": round(run.seconds, 2)}
            if hasattr(judge, "close"):
                judge.close()
    finally:
        if cache is not None:
            cache.close()
    s, lab_all = np.array(scores), np.array(labels)
    agg_label, agg_score = aggregate(s, lab_all, thresholds, cfg.aggregate)
    out_rows: list[Row] = []
    for i, row in enumerate(rows):
        if cfg.drop_unlabelled and agg_label[i] < 0:
            continue
        extra: dict[str, Any] = {}
        for j, name in enumerate(names):
            extra[f"{name}_label"] = None if lab_all[j, i] < 0 else ("harmful" if lab_all[j, i] == 1 else "safe")
            extra[f"{name}_score"] = None if np.isnan(s[j, i]) else float(s[j, i])
        extra["judge_label"] = None if agg_label[i] < 0 else int(agg_label[i])
        extra["judge_score"] = None if np.isnan(agg_score[i]) else round(float(agg_score[i]), 6)
        out_rows.append(row | extra)
    if not (agg_label >= 0).any():
        raise UserError("every judge abstained on every row (unparseable answers or per-row errors); check that the model "
                        "answers with the template's verdict words; nothing was written")
    table = kappa_table(names, lab_all)
    unlabelled = int((agg_label < 0).sum())
    total = {"rows": len(rows), "written": len(out_rows), "harmful": int((agg_label == 1).sum()), "safe": int((agg_label == 0).sum()),
             "unlabelled": unlabelled, "aggregate": cfg.aggregate, "seconds": round(time.monotonic() - start, 2)}
    write_records(out, out_rows)
    write_json(Path(f"{out}.agreement.json"), {"judges": summary, "kappa": table, "total": total})
    _print_summary(names, summary, total, table, out)
    if unlabelled and not cfg.drop_unlabelled:
        print(f"warning: {unlabelled} row(s) have no judge_label (every judge abstained); "
              "pass drop_unlabelled=true or label them before `rlaif-uu refine`")
    return out


def _print_summary(names: list[str], summary: dict[str, Any], total: dict[str, Any], table: dict[str, Any], out: Path) -> None:
    for name in names:
        m = summary[name]
        print(f"{name} ({m['judge_id']}): {m['harmful']} harmful, {m['safe']} safe, {m['abstained']} abstained, "
              f"{m['errors']} errors; {m['cached']} cached, {m['judged']} judged in {m['seconds']:.1f} s")
    if len(names) > 1:
        print(format_kappa(table))
    print(f"{total['aggregate']}: {total['harmful']} harmful, {total['safe']} safe, {total['unlabelled']} unlabelled "
          f"of {total['rows']} rows in {total['seconds']:.1f} s; wrote {out} and {out}.agreement.json")
