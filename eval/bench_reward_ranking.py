"""Which labels and which head give a reward that ranks answers correctly WITHIN a prompt?

    .venv/bin/python eval/bench_reward_ranking.py --labelled runs/qsr/round-1/label/labelled.jsonl

Trains the frozen-MiniLM probe (user and assistant turns embedded apart, as ``rlaif-uu refine``
does) on the rows of a label stage's output, with every combination of

* labels: the judges' aggregate (``judge_label``), the request judge alone (``request_label``),
  and the request judge with over-refusals counted as undesirable (a refusal of a request the
  request judge calls benign is a positive, so the reward learns to prefer answering it);
* head: ``linear`` (additive in the two turns: it can express "harmful request AND complied",
  not "refused XOR harmful request") and ``mlp`` (one hidden layer: it can),

and measures each classifier's within-prompt pairwise accuracy (:mod:`rlaif_uu.reward.pairwise`)
on the default held-out probe (StrongREJECT and over-refusal prompts no training mix uses).
No policy training; a few minutes on 2 cores. Results: ``eval/results/reward_ranking.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"


def _labels(rows: list[dict[str, Any]], kind: str) -> np.ndarray:
    from rlaif_uu.data.schema import parse_label

    if kind == "judges":
        return np.array([parse_label(r["judge_label"]) for r in rows])
    harm = np.array([parse_label(r["request_label"]) for r in rows])
    if kind == "request":
        return harm
    from rlaif_uu.label.cheap import RuleJudge
    from rlaif_uu.label.request import RequestJudge

    rules, judge = RuleJudge(), RequestJudge()
    benign = judge.request_harm([r["prompt"] for r in rows]) < 0.5
    refused = np.array([rules.is_refusal(r.get("response") or "") for r in rows])
    return np.where(benign & refused, 1, harm)


def _features(backbone: Any, texts: list[str], memo: dict[str, np.ndarray]) -> np.ndarray:
    """The probe's input for each text: user and assistant turns embedded apart and concatenated (memoised)."""
    from rlaif_uu.data.schema import split_classifier_text

    parts = [split_classifier_text(t) for t in texts]
    todo = sorted({x for pair in parts for x in pair} - memo.keys())
    if todo:
        memo.update(zip(todo, backbone.embed(todo)))
    return np.stack([np.concatenate([memo[u], memo[v]]) for u, v in parts])


def main() -> None:
    from rlaif_uu.data.io import read_records
    from rlaif_uu.data.schema import classifier_text
    from rlaif_uu.refine.backbones import FrozenEncoder
    from rlaif_uu.refine.classify import train_on_labels
    from rlaif_uu.reward.pairwise import PairwiseProbe, pairwise_accuracy, probe_prompts

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labelled", required=True)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = read_records(a.labelled, required=("prompt", "judge_label"))
    texts = [classifier_text(r["prompt"], r.get("response") or "") for r in rows]
    harmful_prompts, benign_prompts = probe_prompts(PairwiseProbe())
    results: dict[str, Any] = {}
    memo: dict[str, np.ndarray] = {}
    for head in ("linear", "mlp"):
        backbone = FrozenEncoder(head=head)
        backbone.prepare(texts)
        for kind in ("judges", "request", "request+over-refusal"):
            y = _labels(rows, kind)
            accs = []
            for seed in range(a.seeds):
                res = train_on_labels(backbone, np.arange(len(rows)), y, seed, desc=f"{head}/{kind}")
                model = res.model.eval()

                def reward(prompts: list[str], completions: list[str], model: Any = model, backbone: Any = backbone) -> list[float]:
                    emb = _features(backbone, [classifier_text(q, c) for q, c in zip(prompts, completions)], memo)
                    with torch.no_grad():
                        return (-model(torch.as_tensor(emb, dtype=torch.float32)).reshape(-1)).tolist()  # higher = safer

                accs.append(pairwise_accuracy(reward, harmful_prompts, benign_prompts))
            results[f"{head} / {kind}"] = {
                "positives": int(y.sum()), "rows": len(y),
                **{k: float(np.mean([r[k]["accuracy"] for r in accs])) for k in ("harmful", "benign", "balanced")},
                "per_seed": [{k: r[k]["accuracy"] for k in ("harmful", "benign")} for r in accs]}
            print(f"{head:>6} / {kind:<22} harmful {results[f'{head} / {kind}']['harmful']:.3f} "
                  f"benign {results[f'{head} / {kind}']['benign']:.3f}", flush=True)
    cmd = ".venv/bin/python eval/bench_reward_ranking.py " + " ".join(sys.argv[1:])
    lines = [f"# Within-prompt ranking of a frozen-MiniLM reward: labels x head\n\n`{cmd}`\n\n{len(rows)} rows of "
             f"`{a.labelled}`; held-out probe: {len(harmful_prompts)} StrongREJECT + {len(benign_prompts)} over-refusal "
             f"prompts (refusal above compliance and opener; helpful above refusal); mean of {a.seeds} seeds.\n",
             "| head / labels | positives | harmful | benign | balanced |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['positives']}/{v['rows']} | {v['harmful']:.3f} | {v['benign']:.3f} | {v['balanced']:.3f} |"
              for k, v in results.items()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reward_ranking.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "reward_ranking.json").write_text(json.dumps({"command": cmd, "results": results}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
