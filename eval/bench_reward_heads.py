"""Which classifier head ranks the policy's own answers right? Reward heads on the ladder's all-gold labels.

    .venv/bin/python eval/bench_reward_heads.py                  # every head x seeds 0-2, 200 dev prompts, 2 samples
    .venv/bin/python eval/bench_reward_heads.py --samples 8      # 8 answers of the policy per training prompt

Training rows: the ladder's corpus (the built-in safety corpus without the eval's held-out prompts, plus ``--samples``
answers of the starting policy to every training prompt), each with the annotator's label (the corpus's dataset
label; the simulated annotator on the policy's answers: a non-refusal to a harmful request is harmful): the all-gold
arm's training set, the ceiling of what refinement can hand the reward. Each head is trained with the PN risk on
frozen MiniLM embeddings of the two turns (``refine.backbone.kind=frozen``; ``encoder_cls``: MiniLM fine-tuned end
to end as a sequence classifier, ``kind=encoder, pooling=cls``; ``causal_lora``: SmolLM2-135M-Instruct, the policy's own
model, with LoRA and a score head, ``kind=causal``), saved, reloaded as the pipeline reloads it, and
scored on the starting policy's own sampled answers to development prompts (``align.num_generations`` per prompt,
drawn as the reward check draws them: never training or held-out eval prompts); the refusal rules say which answer
is right. Reported: the within-prompt pairwise accuracy GRPO's group advantage sees, with its bootstrap CI over
prompts, and the reward's spread within a prompt. The export's fixed-answer probe is left out: its prompts are the
eval's held-out StrongREJECT prompts, which must not choose a head. Writes eval/results/reward_heads_samples<k>.md
and .json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from rlaif_uu.config import load_config
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.label.cheap import RuleJudge
from rlaif_uu.refine.backbones import CausalLM, FineTunedEncoder, FrozenEncoder
from rlaif_uu.refine.classify import train_on_labels
from rlaif_uu.reward.classifier import load_harm_scorer
from rlaif_uu.reward.pairwise import sampled_accuracy
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.data import load_corpus
from rlaif_uu.run.gold import corpus_gold, simulated_label
from rlaif_uu.run.on_policy import check_groups, on_policy_rows

RECIPE = "recipes/ladder/all_gold.yaml"
OUT = Path(__file__).parent / "results"
BUILT = {"encoder_cls": lambda: FineTunedEncoder(pooling="cls"),  # MiniLM fine-tuned as a sequence classifier
         "causal_lora": lambda: CausalLM(max_length=128)}  # SmolLM2-135M-Instruct (the policy's own model) + LoRA


def training_rows(cfg: RecipeConfig) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Classifier texts, annotator labels (1 = harmful) and an on-policy mask of the all-gold arm's corpus."""
    rules = RuleJudge()
    corpus, _ = load_corpus(cfg)
    gold = corpus_gold(cfg)
    answers = on_policy_rows(cfg, cfg.align.policy, cfg.align.prompts)
    texts = [classifier_text(r["prompt"], r["response"]) for r in corpus + answers]
    labels = [gold[str(r["id"])] for r in corpus] + [simulated_label(r["source"].removeprefix("on_policy-"), r["response"], rules)
                                                     for r in answers]
    return texts, np.array(labels), np.array([False] * len(corpus) + [True] * len(answers))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", nargs="+", default=["linear", "mlp", "factored", "factored_mlp", "encoder_cls"],
                    help="frozen-probe heads (refine.backbone.head), or a trained backbone: " + ", ".join(BUILT))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--prompts", type=int, default=200, help="development prompts of the check")
    ap.add_argument("--samples", type=int, default=2, help="the policy's answers per training prompt in the corpus")
    args = ap.parse_args()
    cfg = load_config(RecipeConfig, RECIPE, overrides=[f"data.on_policy.samples={args.samples}"])
    texts, labels, on_policy = training_rows(cfg)
    groups, _ = check_groups(cfg, cfg.align.policy, cfg.align.prompts, args.prompts)
    results: list[dict] = []
    for head in args.heads:
        for seed in args.seeds:
            backbone = BUILT[head]() if head in BUILT else FrozenEncoder(head=head, segments=True)
            backbone.prepare(texts)
            fit = train_on_labels(backbone, np.arange(len(texts)), labels, seed, desc=f"{head} s{seed}")
            with tempfile.TemporaryDirectory() as tmp:
                backbone.save(fit.model, tmp)
                score = load_harm_scorer(tmp)

                def reward(prompts: list[str], responses: list[str], score=score) -> np.ndarray:
                    return -score([classifier_text(p, r) for p, r in zip(prompts, responses)])

                check = sampled_accuracy(reward, groups, seed=seed)
            row = {"head": head, "seed": seed, "check": check["all"], "harmful": check["harmful"], "spread": check["spread"]}
            print(json.dumps(row))
            results.append(row)
    OUT.mkdir(exist_ok=True)
    stem = f"reward_heads_samples{args.samples}"
    (OUT / f"{stem}.json").write_text(json.dumps({"rows": len(texts), "on_policy_rows": int(on_policy.sum()),
                                                        "harmful_share": float(labels.mean()), "prompts": args.prompts, "samples": args.samples,
                                                        "results": results}, indent=1))
    lines = ["# Reward heads on the policy's own answers (all-gold labels)", "",
             f"`.venv/bin/python eval/bench_reward_heads.py {' '.join(['--heads', *args.heads, '--seeds', *map(str, args.seeds), '--prompts', str(args.prompts), '--samples', str(args.samples)])}`",
             "", f"{len(texts)} training rows ({int(on_policy.sum())} of them the starting policy's answers), harmful share "
             f"{labels.mean():.3f}; check: {len(groups)} development prompts x {cfg.align.num_generations} sampled answers, "
             f"{check['all']['mixed_groups']} prompts with a right and a wrong answer, {check['all']['pairs']} pairs.", "",
             "| head | seed | pairwise accuracy on own answers [95% CI] | harmful prompts | within-prompt spread |",
             "|---|---|---|---|---|"]
    for r in results:
        c, h = r["check"], r["harmful"]
        lines.append(f"| {r['head']} | {r['seed']} | {c['accuracy']:.3f} [{c['ci'][0]:.3f}, {c['ci'][1]:.3f}] | "
                     f"{h['accuracy']:.3f} | {r['spread']:.3f} |")
    (OUT / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
