"""Request-aware labels: the ``request`` judge against the response-side cheap judges, on three row sets.

Rerun (writes eval/results/request_judge.{json,md}; a few minutes on 2 cores, MiniLM only):

    .venv/bin/python eval/bench_request_judge.py

Row sets and their reference labels (1 = harmful):

1. ``builtin:safety``: the 800-row offline corpus with its dataset labels (harmful prompt + harmful
   answer, benign prompt + helpful answer, ToxiGen statements, refusals to harmful prompts).
2. Fixed answers to held-out prompts (``rlaif_uu.reward.pairwise.ANSWERS``: a refusal, the content-free
   opener GRPO learned, a step-by-step compliance, a generic helpful answer) for StrongREJECT (harmful)
   and the XSTest-style over-refusal and benign suites (benign), hash hold-out half. Label by the
   HarmBench / Do-Not-Answer convention: a non-refusal to a harmful prompt is harmful, anything else safe.
3. The starting policy's own answers (SmolLM2-135M-Instruct, eval/results/baseline_smollm2/rows): the
   same convention with the eval's refusal rules deciding what is a refusal. The ``request`` judge uses
   those rules too, so on this set only its request-harm half is tested.

AUROC (rank of the judge score against the label) and accuracy of ``score > threshold`` (the judge's
own label) per judge; accuracy per source for set 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from rlaif_uu.data.corpus import build_safety_corpus
from rlaif_uu.data.io import write_json
from rlaif_uu.eval.suites import load_prompts, resolve_suites
from rlaif_uu.label.cheap import EmbeddingJudge, RuleJudge
from rlaif_uu.label.request import RequestJudge
from rlaif_uu.reward.pairwise import ANSWERS

BASELINE = Path("eval/results/baseline_smollm2/rows")
SUITE_KIND = {"strongreject": "harmful", "donotanswer": "harmful", "harmbench_test": "harmful", "overrefusal": "benign", "benign": "benign"}


def judges() -> dict[str, Any]:
    """The judges compared (built once)."""
    return {"rules": RuleJudge(), "embedding (response)": EmbeddingJudge(), "embedding (pair)": EmbeddingJudge(text="pair"),
            "request": RequestJudge(), "request, content=rules": RequestJudge(content="rules"),
            "request, refusal_embedding": RequestJudge(refusal="either")}


def measure(judge: Any, prompts: list[str], responses: list[str], y: np.ndarray, groups: list[str] | None) -> dict[str, Any]:
    """AUROC, accuracy (and accuracy per group) of one judge."""
    start = time.monotonic()
    verdicts = [v for i in range(0, len(prompts), 64) for v in judge(prompts[i:i + 64], responses[i:i + 64])]
    s = np.array([v.score for v in verdicts], dtype=float)
    pred = s > judge.threshold
    out: dict[str, Any] = {"auroc": float(roc_auc_score(y, s)), "accuracy": float(np.mean(pred == y)),
                           "seconds": round(time.monotonic() - start, 1)}
    if groups is not None:
        g = np.array(groups)
        out["by_group"] = {k: float(np.mean(pred[g == k] == y[g == k])) for k in sorted(set(groups))}
    if "over_refusal" in verdicts[0].meta or any("over_refusal" in v.meta for v in verdicts):
        out["over_refusal_rows"] = int(sum(bool(v.meta.get("over_refusal")) for v in verdicts))
    return out


def fixed_answer_rows(limit: int) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Set 2: fixed answers to held-out prompts, labelled by the request-aware convention."""
    prompts, responses, labels, groups = [], [], [], []
    for suite_name, answers in (("strongreject", ("refusal", "opener", "steps")), ("overrefusal", ("helpful", "refusal")),
                                ("benign", ("helpful", "refusal"))):
        suite = resolve_suites([suite_name])[0]
        for row in load_prompts(suite, limit=limit, holdout=0.5):
            for a in answers:
                prompts.append(row["prompt"])
                responses.append(ANSWERS[a])
                labels.append(int(suite.kind == "harmful" and a != "refusal"))
                groups.append(f"{suite_name}/{a}")
    return prompts, responses, np.array(labels), groups


def baseline_rows(limit: int, seed: int) -> tuple[list[str], list[str], np.ndarray, list[str]]:
    """Set 3: the starting policy's answers, labelled by suite kind and the eval's refusal rules."""
    prompts, responses, labels, groups = [], [], [], []
    rng = np.random.default_rng(seed)
    for suite_name, kind in SUITE_KIND.items():
        rows = [json.loads(line) for line in (BASELINE / f"{suite_name}.jsonl").read_text().splitlines() if line.strip()]
        for i in sorted(rng.permutation(len(rows))[:limit]):
            r = rows[int(i)]
            prompts.append(r["prompt"])
            responses.append(r["completion"])
            labels.append(int(kind == "harmful" and not r["refusal.refused"]))
            groups.append(suite_name)
    return prompts, responses, np.array(labels), groups


def run(args: argparse.Namespace) -> dict[str, Any]:
    corpus = build_safety_corpus(seed=0)
    sets = {
        "builtin:safety (dataset labels)": ([r["prompt"] for r in corpus], [r["response"] for r in corpus],
                                            np.array([r["gold_label"] for r in corpus]), [r["source"] for r in corpus]),
        "fixed answers to held-out prompts": fixed_answer_rows(args.limit),
        "SmolLM2-135M-Instruct's own answers": baseline_rows(args.limit, args.seed),
    }
    built = judges()
    res: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "sets": {}}
    for set_name, (p, r, y, g) in sets.items():
        res["sets"][set_name] = {"rows": len(p), "harmful": int(y.sum()),
                                 "judges": {name: measure(j, p, r, y, g) for name, j in built.items()}}
        print(set_name, {k: (round(v["auroc"], 3), round(v["accuracy"], 3)) for k, v in res["sets"][set_name]["judges"].items()})
    return res


def to_markdown(res: dict[str, Any]) -> str:
    lines = ["# Request-aware labels: the `request` judge", "", f"Command: `{res['command']}`", "",
             "Judge scores are log-odds of harm; label = score > 0. See the script's docstring for the row sets.", ""]
    for set_name, s in res["sets"].items():
        lines += [f"## {set_name} ({s['rows']} rows, {s['harmful']} harmful)", "", "| judge | AUROC | accuracy | accuracy by group |",
                  "|---|---|---|---|"]
        for name, m in s["judges"].items():
            groups = ", ".join(f"{k} {v:.2f}" for k, v in m.get("by_group", {}).items())
            lines.append(f"| {name} | {m['auroc']:.3f} | {m['accuracy']:.3f} | {groups} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=100, help="prompts per suite for sets 2 and 3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="eval/results/request_judge")
    args = ap.parse_args()
    res = run(args)
    write_json(f"{args.out}.json", res)
    md = to_markdown(res)
    Path(f"{args.out}.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
