"""Write the refinement quickstart's inputs from the offline gold corpus and committed judge verdicts.

    .venv/bin/python eval/make_demo.py --out runs/quickstart/data [--judge qwen] [--n-gold 50]

Writes ``corpus.jsonl`` (prompt, response, judge_label, judge_score; no gold) and
``gold.jsonl``: the rows ``rlaif-uu refine sample-gold`` would ask a human to
label, answered from the datasets' own labels (a simulated annotator).
Judge verdicts come from ``eval/data/corpus_judges.jsonl`` (eval/judge_corpus.py;
the ``qwen`` column holds real Qwen2.5-Coder-1.5B-Instruct verdicts), or
``--judge simulated`` for class-conditional noise (35% harmful->safe, 15% safe->harmful).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rlaif_uu.data.corpus import build_safety_corpus, simulate_judge
from rlaif_uu.data.io import write_records
from rlaif_uu.refine.priors import sample_gold

VERDICTS = Path(__file__).parent / "data" / "corpus_judges.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--judge", default="qwen", help="a column of corpus_judges.jsonl (qwen, minilm, rules, ...) or 'simulated'")
    ap.add_argument("--n-gold", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    corpus = build_safety_corpus(seed=0)
    y = np.array([r["gold_label"] for r in corpus])
    if args.judge == "simulated":
        labels, scores = simulate_judge(y, seed=args.seed), [None] * len(y)
    else:
        table = {r["id"]: r for r in map(json.loads, VERDICTS.read_text().splitlines())}
        key = f"{args.judge}_score"
        if key not in table[corpus[0]["id"]]:
            raise SystemExit(f"{VERDICTS} has no column {key}; run eval/judge_corpus.py or pick another --judge")
        scores = [float(table[r["id"]][key]) for r in corpus]
        labels = (np.array(scores) > 0).astype(int)
    rows = [{"id": r["id"], "prompt": r["prompt"], "response": r["response"], "source": r["source"],
             "judge_label": int(lab)} | ({"judge_score": s} if s is not None else {}) for r, lab, s in zip(corpus, labels, scores)]
    out = Path(args.out)
    write_records(out / "corpus.jsonl", rows)
    picked = sample_gold(labels, args.n_gold, args.seed)
    write_records(out / "gold.jsonl", [{"id": corpus[i]["id"], "gold_label": int(y[i])} for i in picked])
    print(f"judge '{args.judge}': accuracy {(labels == y).mean():.3f} on {len(y)} rows; wrote {out}/corpus.jsonl and "
          f"{out}/gold.jsonl ({len(picked)} gold rows, half from each pseudo set)")


if __name__ == "__main__":
    main()
