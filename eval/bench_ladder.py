"""The ladder: how much safer each reward makes the policy, same budget, same seeds, paired intervals.

    .venv/bin/python eval/bench_ladder.py run --arm refined --seed 0      # one arm, one seed (a whole recipe run)
    .venv/bin/python eval/bench_ladder.py score      # + the compliance LLM scorer on every run's harmful answers
                                                     #   (--limit N: the first N prompts per suite; ~8 s a row on 2 cores)
    .venv/bin/python eval/bench_ladder.py table      # eval/results/ladder.{md,json,png} from every run

Arms (``recipes/ladder/<arm>.yaml``; each changes one thing of ``refined.yaml``):

* ``start``: the policy before training (every run's ``eval_before``);
* ``raw_judge``: the reward trained on the judges' raw labels (the floor);
* ``refined``: robust UU with at most 50 gold labels in all, one round of 40 steps;
* ``refined_rounds``: the same in two on-policy rounds of 20 steps (the product as designed);
* ``all_gold``: the reward trained on the annotator's label for every row (the labelling ceiling);
* ``rules``: the eval's refusal rules used directly as the reward (the RL loop's ceiling).

Seed S sets every seed of the run (GRPO, its prompt mix, the on-policy samples, refinement, the
export, the annotator's query). The eval's prompts are the held-out prompts of the training
sources plus StrongREJECT (never trained on), the same for every run, so two runs are compared
per prompt: the paired change is a percentile bootstrap over (seed, prompt) pairs of the
per-prompt differences. Scorers: the refusal rules, the request-aware scorer of the recipe's eval
(it shares the refusal rules) and, after ``score``, the compliance LLM scorer (the Qwen judge with
the ``compliance`` template), which shares nothing with the rules or the label stage's judges.
Every run is appended to ``eval/results/ladder_runs.jsonl``; ``table`` reports them all.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.reward.pairwise import CHECK_FILE, sampled_cell

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "ladder_runs.jsonl"
RECIPES = Path(__file__).parent.parent / "recipes" / "ladder"
ARMS = ("raw_judge", "refined", "refined_rounds", "all_gold", "rules")
SEED_KEYS = ("align.seed", "align.prompts.seed", "data.on_policy.seed", "refine.seed", "reward.seed", "annotator.seed")
LLM = "llm.unsafe"  # the `score` step's column: the compliance LLM scorer (eval/bench_compliance_scorer.py)
# (suite, per-row column, label): what the table shows; harmful rows are "unsafe" (complied), benign ones "refused"
CELLS = (("donotanswer", "refusal.unsafe", "DNA compliance (rules)"),
         ("donotanswer", "judge:request_scorer.unsafe", "DNA compliance (request scorer)"),
         ("strongreject", "refusal.unsafe", "StrongREJECT compliance (rules)"),
         ("strongreject", "judge:request_scorer.unsafe", "StrongREJECT compliance (request scorer)"),
         ("donotanswer", LLM, "DNA compliance (LLM)"),
         ("strongreject", LLM, "StrongREJECT compliance (LLM)"),
         ("benign", "refusal.refused", "benign refusal"),
         ("overrefusal", "refusal.refused", "over-refusal"))


def _rows(eval_dir: Path) -> dict[str, dict[str, dict[str, float]]]:
    """suite -> prompt id -> the table's per-row columns, from an eval folder's ``rows/``."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for suite in {s for s, _, _ in CELLS}:
        path = eval_dir / "rows" / f"{suite}.jsonl"
        cols = [c for s, c, _ in CELLS if s == suite]
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
        out[suite] = {r["id"]: {c: float(r[c]) for c in cols if r.get(c) is not None} for r in rows}
    return out


def run(args: argparse.Namespace) -> None:
    from rlaif_uu.config import load_config
    from rlaif_uu.run.config import RecipeConfig
    from rlaif_uu.run.runner import run_recipe
    from rlaif_uu.run.stages import final_dirs

    out = Path(args.work) / f"{args.arm}-s{args.seed}"
    overrides = [f"{k}={args.seed}" for k in SEED_KEYS] + args.overrides
    cfg = load_config(RecipeConfig, str(Path(args.recipes) / f"{args.arm}.yaml"), {"out": str(out)}, overrides)
    start = time.perf_counter()
    run_recipe(cfg)
    d = final_dirs(cfg)  # the last round's folders

    def load(path: Path) -> dict[str, Any]:
        return json.loads(path.read_text()) if path.is_file() else {}

    monitor = load(d["align"] / "monitor.json")
    result = {"arm": args.arm, "seed": args.seed, "overrides": args.overrides, "seconds": time.perf_counter() - start,
              "reward_pairwise": load(d["reward"] / "rlaif_uu_reward.json").get("pairwise"),
              "reward_sampled": load(d["reward"] / CHECK_FILE) or None,
              "degeneration": load(d["compare"] / "compare.json").get("degeneration"),
              "alarm": monitor.get("alarm"), "drift": monitor.get("drift"),
              "eval_dirs": {"before": str(d["eval_before"]), "after": str(d["eval_after"])},
              "before": _rows(d["eval_before"]), "after": _rows(d["eval_after"])}
    runs = Path(args.runs)
    runs.parent.mkdir(parents=True, exist_ok=True)
    with runs.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(f"{args.arm} seed {args.seed}: {result['seconds']:.0f} s -> {runs}")


def score(args: argparse.Namespace) -> None:
    """Add the compliance LLM scorer's verdicts (column ``llm.unsafe``) to the harmful rows of every run."""
    from bench_compliance_scorer import compliance_judge, compliance_scores

    path = Path(args.runs)
    runs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    judge = compliance_judge()
    for r in runs:
        for side in ("before", "after"):
            default = Path(args.work) / f"{r['arm']}-s{r['seed']}" / f"eval_{side}"
            folder = Path(r.get("eval_dirs", {}).get(side, default)) / "rows"
            for suite in ("donotanswer", "strongreject"):
                if any(LLM in v for v in r[side][suite].values()):
                    continue  # scored by an earlier call (its run folder may be gone)
                rows = [json.loads(x) for x in (folder / f"{suite}.jsonl").read_text().splitlines() if x.strip()]
                rows = sorted(rows, key=lambda x: x["id"])[:args.limit] if args.limit else rows
                s = compliance_scores(judge, [x["prompt"] for x in rows], [x["completion"] for x in rows])
                for x, v in zip(rows, s, strict=True):
                    r[side][suite].setdefault(x["id"], {})[LLM] = float(v > judge.threshold)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in runs))
    tmp.replace(path)
    print(f"{path}: the compliance scorer's verdicts added to {len(runs)} runs")


def _paired(a: list[dict[str, Any]], b: list[dict[str, Any]], suite: str, col: str,
            a_side: str = "after", b_side: str = "after") -> dict[str, float] | None:
    """Mean per-prompt change b - a over the seeds both arms ran, with a paired bootstrap 95% interval."""
    from rlaif_uu.eval.metrics import bootstrap_mean

    by_seed = {r["seed"]: r for r in a}
    diffs = []
    for rb in b:
        ra = by_seed.get(rb["seed"])
        if ra is None:
            continue
        xa, xb = ra[a_side][suite], rb[b_side][suite]
        diffs += [xb[i][col] - xa[i][col] for i in xa if i in xb and col in xa[i] and col in xb[i]]
    return bootstrap_mean(np.array(diffs)).to_dict() if diffs else None


def _rate(runs: list[dict[str, Any]], side: str, suite: str, col: str) -> dict[str, float] | None:
    from rlaif_uu.eval.metrics import bootstrap_mean

    values = [row[col] for r in runs for row in r[side][suite].values() if col in row]
    return bootstrap_mean(np.array(values)).to_dict() if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``arms``: per arm, rates (pooled over its seeds), the paired change vs start and vs raw_judge;
    ``refined_share_of_all_gold``: the refined arm's share of the all-gold arm's compliance reduction."""
    arms = {a: [r for r in runs if r["arm"] == a] for a in ARMS}
    arms = {a: rs for a, rs in arms.items() if rs}
    start = next(iter(arms.values()))  # every run's eval_before is the same starting policy on the same prompts
    table: dict[str, Any] = {"start": {"seeds": sorted({r["seed"] for r in start}),
                                       **{label: {"rate": _rate(start, "before", s, c)} for s, c, label in CELLS}}}
    for arm, rs in arms.items():
        table[arm] = {"seeds": sorted(r["seed"] for r in rs), "seconds": float(np.mean([r["seconds"] for r in rs])),
                      "degeneration": [bool((r.get("degeneration") or {}).get("flag")) for r in rs],
                      "alarm": [bool((r.get("alarm") or {}).get("fired")) for r in rs],
                      "drift": [(r.get("drift") or {}).get("found") for r in rs],
                      "sampled": [sampled_cell(r.get("reward_sampled")) for r in rs]}
        for s, c, label in CELLS:
            table[arm][label] = {"rate": _rate(rs, "after", s, c), "vs_start": _paired(rs, rs, s, c, "before", "after"),
                                 "vs_raw": _paired(arms["raw_judge"], rs, s, c) if "raw_judge" in arms else None}
    share: dict[str, dict[str, float]] = {}
    for arm in ("refined", "refined_rounds"):
        if "all_gold" not in arms or arm not in arms:
            continue
        for s, c, label in CELLS[:6]:
            gold, refined = table["all_gold"][label]["vs_start"], table[arm][label]["vs_start"]
            if gold and refined and gold["value"] < 0:
                share.setdefault(arm, {})[label] = refined["value"] / gold["value"]
    return {"arms": table, "refined_share_of_all_gold": share}


def _fmt(e: dict[str, float] | None, signed: bool = False) -> str:
    if not e:
        return "-"
    sign = "+" if signed else ""
    return f"{e['value']:{sign}.3f} [{e['low']:{sign}.2f}, {e['high']:{sign}.2f}]"


PLOTTED = ("DNA compliance (rules)", "DNA compliance (LLM)", "StrongREJECT compliance (LLM)", "over-refusal")


def plot(arms: dict[str, Any], path: Path) -> None:
    """Grouped bars: each arm's rate on the plotted cells, with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.6))
    width = 0.8 / len(arms)
    for i, (arm, t) in enumerate(arms.items()):
        cells = [t[c]["rate"] for c in PLOTTED]
        x = np.arange(len(PLOTTED)) + (i - (len(arms) - 1) / 2) * width
        err = [[c["value"] - c["low"] for c in cells], [c["high"] - c["value"] for c in cells]]
        ax.bar(x, [c["value"] for c in cells], width, yerr=err, capsize=2, label=f"{arm} (seeds {len(t['seeds'])})")
    ax.set_xticks(np.arange(len(PLOTTED)), [c.replace(" compliance", "\ncompliance") for c in PLOTTED])
    ax.set_ylabel("rate on held-out prompts")
    ax.set_ylim(0, 1.25)
    ax.legend(fontsize=7, ncol=len(arms), loc="upper center")
    ax.set_title("reward source vs held-out safety (lower is safer), 95% CIs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(args: argparse.Namespace) -> None:
    runs = [json.loads(line) for line in Path(args.runs).read_text().splitlines() if line.strip()]
    summary = summarise(runs)
    labels = [label for _, _, label in CELLS]
    lines = ["| arm | seeds | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    arms = summary["arms"]
    for arm, t in arms.items():
        lines.append(f"| {arm} | {','.join(map(str, t['seeds']))} | " + " | ".join(_fmt(t[lb]["rate"]) for lb in labels) + " |")
    lines += ["", "Paired change vs start (after - before, same prompts and seeds):", "",
              "| arm | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {a} | " + " | ".join(_fmt(t[lb]["vs_start"], True) for lb in labels) + " |"
              for a, t in arms.items() if a != "start"]
    if "raw_judge" in arms:
        lines += ["", "Paired change vs the raw-judge reward (same seeds):", "",
                  "| arm | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        lines += [f"| {a} | " + " | ".join(_fmt(t[lb]["vs_raw"], True) for lb in labels) + " |"
                  for a, t in arms.items() if a not in ("start", "raw_judge")]
    lines += [f"\n{arm}'s share of the all-gold ceiling's compliance reduction: " + ", ".join(f"{k} {v:.2f}" for k, v in s.items())
              for arm, s in summary["refined_share_of_all_gold"].items()]
    flags = [f"{a}: degeneration {t['degeneration']}, alarm {t['alarm']}, drift {t['drift']}, reward on own answers "
             f"{t['sampled']}, {t['seconds']:.0f} s per run" for a, t in arms.items() if a != "start"]
    sets = sorted({o for r in runs for o in r.get("overrides", [])})  # every run's --set, named in its command
    run_flags = args.flags + (f" --set {' '.join(sets)}" if sets else "")
    text = ("# The ladder: reward source vs held-out safety, same budget and seeds\n\n"
            f"`.venv/bin/python eval/bench_ladder.py run --arm ARM --seed S{run_flags}` per run ({args.recipes}/ARM.yaml), "
            f"then `.venv/bin/python eval/bench_ladder.py table{args.flags}`. Held-out prompts (never trained on); 95% bootstrap "
            "intervals over (seed, prompt) pairs.\n\n" + "\n".join(lines) + "\n\n" + "\n".join(f"- {f}" for f in flags) + "\n")
    out = Path(args.runs).with_name(Path(args.runs).stem.removesuffix("_runs"))
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(arms, out.with_suffix(".png"))
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "score", "table"])
    p.add_argument("--arm", choices=ARMS, default="refined")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=int, default=None, help="score: the first N prompts (by id) per suite only")
    p.add_argument("--work", default="runs/ladder")
    p.add_argument("--runs", default=str(RUNS), help="the runs file (the table is written beside it)")
    p.add_argument("--recipes", default=str(RECIPES.relative_to(RECIPES.parents[1])), help="the folder of the arms' recipes")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="recipe overrides on top of the arm's")
    a = p.parse_args()
    a.flags = "".join(f" --{k} {v}" for k, v in (("recipes", a.recipes), ("runs", a.runs), ("work", a.work))
                      if v != p.get_default(k))  # the table's commands name the non-default ladder they ran
    {"run": run, "score": score, "table": table}[a.what](a)


if __name__ == "__main__":
    main()
