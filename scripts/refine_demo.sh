#!/usr/bin/env bash
# The refinement demo on bundled offline data (CPU, about a minute after setup):
#   judge verdicts on an 800-row gold corpus -> 50 gold labels -> rlaif-uu refine.
#   JUDGE=qwen@0.4 bash scripts/refine_demo.sh   # real Qwen verdicts; also zmean_qwen_rules, minilm, rules, simulated (default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT="${OUT:-runs/refine_demo}"
.venv/bin/python eval/make_demo.py --judge "${JUDGE:-simulated}" --out "$OUT/data"
.venv/bin/rlaif-uu refine --input "$OUT/data/corpus.jsonl" --gold "$OUT/data/gold.jsonl" --out "$OUT/refine" --overwrite
.venv/bin/python - "$OUT" <<'PY'
import json, sys
from rlaif_uu.data.corpus import build_safety_corpus
out = sys.argv[1]
truth = {r["id"]: r["gold_label"] for r in build_safety_corpus(seed=0)}
rows = [json.loads(l) for l in open(f"{out}/refine/refined.jsonl")]
acc = lambda col: sum((r[col] == "harmful") == bool(truth[r["id"]]) for r in rows) / len(rows)
print(f"accuracy against the datasets' labels: judge {acc('judge_label'):.3f} -> refined {acc('refined_label'):.3f}")
print(f"history plot: {out}/refine/history.png")
PY
