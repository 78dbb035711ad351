"""A second harmful-compliance scorer that shares nothing with the refusal rules: the offline LLM with the ``compliance`` template.

    .venv/bin/python eval/bench_compliance_scorer.py --limit 30     # eval/results/compliance_scorer.{md,json}

The eval's refusal rules decide harmful compliance by refusal patterns; the training labels of the
rounds recipe use the same rules (and the simulated annotator does), so a gain measured by them
alone could be a gain in saying the rules' words. This checks the candidate independent scorer,
``transformers:model=qwen2.5-coder-1.5b-judge,template=compliance`` (none of the label stage's
judges), on two row sets of held-out harmful prompts:

1. fixed answers whose truth is known: a refusal (safe), a content-free "I'm glad to help"
   opener and a step-by-step compliance (both unsafe), to StrongREJECT prompts;
2. the starting policy's own greedy answers to Do-Not-Answer and StrongREJECT prompts
   (``eval/results/baseline_smollm2/rows``): agreement (Cohen's kappa) with the refusal rules,
   and the rows where they disagree, for reading by hand.
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

from rlaif_uu.assets import cache_dir
from rlaif_uu.eval.metrics import bootstrap_mean, cohen_kappa
from rlaif_uu.eval.suites import load_prompts, resolve_suites
from rlaif_uu.label.cache import VerdictCache, judge_rows
from rlaif_uu.label.config import judge_config
from rlaif_uu.label.run import build_judge
from rlaif_uu.reward.pairwise import ANSWERS

RESULTS = Path(__file__).parent / "results"
BASELINE = RESULTS / "baseline_smollm2" / "rows"
SPEC = judge_config("transformers", model="qwen2.5-coder-1.5b-judge", template="compliance")


def compliance_scores(judge: Any, prompts: list[str], responses: list[str]) -> np.ndarray:
    """The compliance judge's log-odds of "went along with the request", through the shared verdict cache."""
    return judge_rows(judge, prompts, responses, VerdictCache(cache_dir() / "judge-cache.sqlite")).scores


def compliance_judge() -> Any:
    return build_judge(SPEC, judge_responses=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=30, help="prompts per suite and row set")
    args = p.parse_args()
    judge = compliance_judge()
    start = time.monotonic()
    res: dict = {"command": " ".join(["python", *sys.argv]), "judge": judge.judge_id, "threshold": judge.threshold}

    prompts, responses, y, groups = [], [], [], []
    for row in load_prompts(resolve_suites(["strongreject"])[0], limit=args.limit, holdout=0.5):
        for a in ("refusal", "opener", "steps"):
            prompts.append(row["prompt"]), responses.append(ANSWERS[a]), y.append(int(a != "refusal")), groups.append(a)
    s = compliance_scores(judge, prompts, responses)
    pred, y, g = s > judge.threshold, np.array(y), np.array(groups)
    res["fixed"] = {"rows": len(y), "auroc": float(roc_auc_score(y, s)), "accuracy": float(np.mean(pred == y)),
                    "by_answer": {k: float(np.mean(pred[g == k] == y[g == k])) for k in ("refusal", "opener", "steps")}}

    res["policy"] = {}
    for suite in ("donotanswer", "strongreject"):
        rows = [json.loads(line) for line in (BASELINE / f"{suite}.jsonl").read_text().splitlines() if line.strip()]
        rows = [rows[i] for i in sorted(np.random.default_rng(0).permutation(len(rows))[:args.limit])]
        s = compliance_scores(judge, [r["prompt"] for r in rows], [r["completion"] for r in rows])
        llm = (s > judge.threshold).astype(float)
        rules = np.array([float(not r["refusal.refused"]) for r in rows])
        kappa, n = cohen_kappa(llm, rules)
        res["policy"][suite] = {"rows": n, "compliance_llm": bootstrap_mean(llm).to_dict(),
                                "compliance_rules": bootstrap_mean(rules).to_dict(), "kappa": kappa,
                                "agreement": float(np.mean(llm == rules)),
                                "disagreements": [{"prompt": r["prompt"][:120], "answer": r["completion"][:200],
                                                   "llm": int(a), "rules": int(b)}
                                                  for r, a, b in zip(rows, llm, rules, strict=True) if a != b][:6]}
    res["seconds"] = round(time.monotonic() - start, 1)
    (RESULTS / "compliance_scorer.json").write_text(json.dumps(res, indent=1) + "\n")
    f = res["fixed"]
    lines = ["# The `compliance` LLM scorer vs known answers and vs the refusal rules\n",
             f"Command: `.venv/bin/python {' '.join(sys.argv)}` ({res['seconds']:.0f} s). Judge `{res['judge']}`.\n",
             f"Fixed answers to {f['rows'] // 3} held-out StrongREJECT prompts: AUROC {f['auroc']:.3f}, accuracy "
             f"{f['accuracy']:.3f} (refusal {f['by_answer']['refusal']:.2f}, opener {f['by_answer']['opener']:.2f}, "
             f"steps {f['by_answer']['steps']:.2f}).\n",
             "| starting policy's answers | rows | compliance (LLM) | compliance (rules) | agreement | kappa |",
             "|---|---|---|---|---|---|"]
    for suite, r in res["policy"].items():
        lines.append(f"| {suite} | {r['rows']} | {r['compliance_llm']['value']:.3f} | {r['compliance_rules']['value']:.3f} | "
                     f"{r['agreement']:.3f} | {r['kappa'] if r['kappa'] is None else round(r['kappa'], 3)} |")
    (RESULTS / "compliance_scorer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
