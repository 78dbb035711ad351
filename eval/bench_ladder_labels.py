"""How right are the labels a ladder run trains its reward on? Judges and refinement settings vs the annotator.

    .venv/bin/python eval/bench_ladder_labels.py runs/ladder/rules-s0     # a finished ladder run folder (one round)

Truth for every row: the built-in corpus's dataset label, and for the policy's on-policy answers the simulated
annotator (a non-refusal to a harmful request is harmful; rlaif_uu/run/gold.py). Accuracy is over the rows
outside the run's gold file. Refinement variants rerun `rlaif-uu refine` on the run's labelled rows: the recipe's
settings, the library defaults, and both with the priors from the run's random corpus gold rows only (gold_round 0).
Writes eval/results/ladder_labels.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rlaif_uu.data.corpus import build_safety_corpus
from rlaif_uu.label.cheap import RuleJudge

VARIANTS = {"recipe settings (combine none, margin 1 SE)": ["combine=none", "margin_se=1.0"],
            "library defaults (combine judge, margin 0)": ["combine=judge", "margin_se=0.0"]}


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def main() -> None:
    run = Path(sys.argv[1])
    rules = RuleJudge()
    corpus = {str(r["id"]): int(r["gold_label"] in (1, "harmful", "1")) for r in build_safety_corpus(seed=0)}
    gold_rows = _rows(run / "gold" / "gold.jsonl")
    gold_ids = {g["id"] for g in gold_rows}

    def truth(r: dict) -> int:
        if r["id"].startswith("onpolicy-"):
            return int(r["source"].endswith("harmful") and not rules.is_refusal(r["response"]))
        return corpus[r["id"]]

    def accuracy(rows: list[dict], column: str) -> tuple[float, float, float]:
        rows = [r for r in rows if r["id"] not in gold_ids]
        t = np.array([truth(r) for r in rows])
        p = np.array([r[column] in ("harmful", 1) for r in rows])
        on = np.array([r["id"].startswith("onpolicy-") for r in rows])
        return float(np.mean(p == t)), float(np.mean(p[on] == t[on])), float(np.mean(p[~on] == t[~on]))

    labelled = _rows(run / "label" / "labelled.jsonl")
    judges = sorted(k[: -len("_label")] for k in labelled[0] if k.endswith("_label") and k != "judge_label")
    lines = ["# Label accuracy on a ladder run's corpus", "",
             f"`.venv/bin/python eval/bench_ladder_labels.py {run}`: rows outside the gold file, truth = corpus labels "
             "and the simulated annotator on the on-policy answers.", "",
             "| labels | all | on-policy rows | corpus rows |", "|---|---|---|---|"]
    for name in [*judges, "judge"]:
        lines.append(f"| {'judges aggregated' if name == 'judge' else 'judge ' + name} | "
                     + " | ".join(f"{a:.3f}" for a in accuracy(labelled, f"{name}_label")) + " |")
    with tempfile.TemporaryDirectory() as tmp:
        random_gold = Path(tmp) / "gold_random.jsonl"
        random_gold.write_text("".join(json.dumps(g) + "\n" for g in gold_rows if g.get("gold_round", 0) == 0))
        for gold, gold_name in ((run / "gold" / "gold.jsonl", f"{len(gold_rows)} gold"),
                                (random_gold, f"{sum(g.get('gold_round', 0) == 0 for g in gold_rows)} random gold")):
            for name, overrides in VARIANTS.items():
                out = Path(tmp) / "refine"
                subprocess.run([sys.executable, "-m", "rlaif_uu", "refine", "--input", str(run / "label" / "labelled.jsonl"),
                                "--gold", str(gold), "--out", str(out), "--overwrite", *overrides],
                               check=True, capture_output=True)
                sel = json.loads((out / "history.json").read_text())["selected_iteration"]
                lines.append(f"| refined, {name}, {gold_name} (iteration {sel}) | "
                             + " | ".join(f"{a:.3f}" for a in accuracy(_rows(out / "refined.jsonl"), "refined_label")) + " |")
    text = "\n".join(lines) + "\n"
    (Path(__file__).parent / "results" / "ladder_labels.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
