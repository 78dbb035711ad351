"""The refine stage's API: :func:`run_refine` (``rlaif-uu refine``) and :func:`run_sample_gold` (``refine sample-gold``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.assets import resolve_model
from rlaif_uu.config import to_yaml
from rlaif_uu.config_ranges import AT_LEAST_1, check_choice, check_number
from rlaif_uu.data.io import atomic_dir, check_output, read_records, write_json, write_records
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import METHODS, REFINE_COLUMNS, RefineConfig, build_backbone, loop_settings
from rlaif_uu.refine.priors import load_gold, sample_gold


def run_refine(cfg: RefineConfig) -> Path | None:
    """Run ``cfg.method`` end to end and write ``cfg.out`` (atomically: all or nothing).

    ``active`` returns ``None`` while its labelling queue waits for a person.
    """
    check_choice("method", cfg.method, METHODS)
    check_output(cfg.out, folder=True)  # every method writes a folder; fail before any training
    if cfg.method == "active":
        from rlaif_uu.refine.queue import run_active_queue

        return run_active_queue(cfg)
    if cfg.method != "robust_uu":
        from rlaif_uu.refine.methods import run_method

        return run_method(cfg)
    # torch and matplotlib load only when a verb runs
    from rlaif_uu.refine.loop import refine
    from rlaif_uu.refine.report import plot_history

    out = Path(cfg.out)
    rows = read_records(cfg.input, required=REFINE_COLUMNS)
    gold = load_gold(rows, cfg.gold)
    backbone = build_backbone(cfg.backbone)
    resolve_model(backbone.model_name)  # fail before any work when the model path does not exist
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not cfg.overwrite:
        raise UserError(f"{out}: output directory exists and is not empty; pass --overwrite or choose another --out")
    with atomic_dir(out) as tmp:
        texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
        judge = np.array([r["judge_label"] for r in rows])
        scores = [r.get("judge_score") for r in rows]
        result = refine(texts, judge, gold, backbone, **loop_settings(cfg),
                        judge_scores=None if any(s is None for s in scores) else np.array(scores, dtype=float))
        refined: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            score = None if result.scores is None else float(result.scores[i])
            refined.append(row | {"refined_label": int(result.labels[i]), "refined_score": score})
        write_records(tmp / "refined.jsonl", refined)
        history = result.history_dict() | {"n_rows": len(rows), "n_gold": len(gold), "loss": cfg.loss, "lam": cfg.lam}
        write_json(tmp / "history.json", history)
        plot_history(history, tmp / "history.png")
        (tmp / "config.yaml").write_text(to_yaml(cfg))
        if result.model is not None:
            backbone.save(result.model, str(tmp / "classifier"))
            write_json(tmp / "classifier" / "refinement.json",
                       {"iteration": result.model_iteration, "selected_iteration": result.selected})
    fb = result.gold_fallback
    if fb:
        print(f"fall-back: {fb['reason']}; a classifier trained on the {fb['n_gold']} gold rows alone scores "
              f"{fb['gold_accuracy']:.3f} on them (cross-fitted) vs the judge's {fb['judge_gold_accuracy']:.3f} "
              f"(gain {fb['gain_vs_judge']['value']:+.3f}, SE {fb['gain_vs_judge']['se']:.3f}): using its labels; wrote {out} "
              "(fallback=judge keeps the judge's)")
        return out
    best = result.history[result.selected]
    acc = best.gold_accuracy
    print(f"selected iteration {result.selected} of {len(result.history) - 1} ({result.stop_reason}); "
          f"gold accuracy {acc['value']:.3f} [{acc['low']:.3f}, {acc['high']:.3f}]; wrote {out}")
    if best.stacking:
        w = best.stacking
        print(f"relabelled by the classifier stacked with the judge on the gold rows: "
              f"{w['classifier']:.2f}·g {w['judge']:+.2f}·judge {w['intercept']:+.2f} (history.json: stacking)")
    if result.selected == 0:
        print("warning: no refinement iteration beat the judge's own labels on the gold rows; "
              "refined labels are the judge's (see history.png)")
    elif best.gain_vs_judge["value"] <= best.gain_vs_judge["se"]:
        print(f"note: iteration {result.selected} beats the judge on the gold rows by {best.gain_vs_judge['value']:+.3f} "
              f"± {best.gain_vs_judge['se']:.3f} (SE), within noise; label more gold rows to tell, or set margin_se=1 "
              "to keep the judge's labels unless the gain is clear")
    return out


def run_sample_gold(input_path: str, n: int, out: str, seed: int, overwrite: bool) -> Path:
    """Write ``n`` rows to label by hand (half pseudo-harmful, half pseudo-safe) with an empty gold_label."""
    check_number("--n", n, AT_LEAST_1)
    if Path(out).exists() and not overwrite:
        raise UserError(f"{out}: file exists; pass --overwrite or choose another --out")
    check_output(out)
    rows = read_records(input_path, required=REFINE_COLUMNS)
    picked = sample_gold(np.array([r["judge_label"] for r in rows]), n, seed)
    todo = [{"id": rows[i]["id"], "prompt": rows[i]["prompt"], "response": rows[i]["response"],
             "judge_label": rows[i]["judge_label"], "gold_label": None} for i in picked]
    write_records(out, todo)
    n_pos = sum(r["judge_label"] for r in todo)
    print(f"wrote {len(todo)} rows to {out} ({n_pos} the judge called harmful, {len(todo) - n_pos} safe); "
          "fill in gold_label with harmful or safe, then pass the file as --gold")
    return Path(out)
