"""Write the refinement quickstart's inputs from the offline gold corpus and committed judge verdicts.

    .venv/bin/python eval/make_demo.py --out runs/refine_demo/data [--judge qwen@0.4] [--n-gold 50]

Writes ``corpus.jsonl`` (prompt, response, judge_label, judge_score; no gold) and
``gold.jsonl``: the rows ``rlaif-uu refine sample-gold`` would ask a human to
label, answered from the datasets' own labels (a simulated annotator).
Judge verdicts come from ``eval/data/corpus_judges.jsonl`` (eval/judge_corpus.py;
the ``qwen`` column holds real Qwen2.5-Coder-1.5B-Instruct scores, response-only
template; it rates everything unsafe at 0, so label its top 40% harmful), or
``--judge simulated`` for class-conditional noise (35% harmful->safe, 15% safe->harmful).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_refine import judge_labels  # eval/ is on sys.path when this file runs as a script

from rlaif_uu.data.corpus import build_safety_corpus
from rlaif_uu.data.io import write_records
from rlaif_uu.refine.priors import sample_gold

VERDICTS = Path(__file__).parent / "data" / "corpus_judges.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--judge", default="qwen@0.4",
                    help="'simulated', a column of corpus_judges.jsonl labelled at score > 0 (rules, minilm, zmean_qwen_rules), "
                    "or COLUMN@F to label the top fraction F harmful (qwen@0.4: Qwen scores are all > 0)")
    ap.add_argument("--n-gold", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    corpus = build_safety_corpus(seed=0)
    y = np.array([r["gold_label"] for r in corpus])
    labels, scores = judge_labels(args.judge, y, [r["id"] for r in corpus], args.seed)
    scores = [None] * len(y) if scores is None else scores.tolist()
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
