"""Reward shortcut probe: can a reward trained on the builtin corpus tell a refusal from a compliance on a new request?

Rerun (writes eval/results/reward_shortcut.{json,md}; about a minute on 2 cores with cached embeddings):

    .venv/bin/python eval/bench_reward_shortcut.py
    .venv/bin/python eval/bench_reward_shortcut.py --reward runs/quickstart/reward   # also probe exported rewards

Two measurements on frozen MiniLM features (the quickstart's backbone: user and assistant turns
embedded apart, concatenated), with logistic regressions fitted on the corpus' *gold* labels, so
label noise plays no part:

1. How much of the label the prompt alone gives away: 5-fold cross-validated accuracy and AUROC of a
   classifier that sees only the user turn, next to one that sees both turns.
2. What a classifier on both turns (and any exported ``--reward``) says about fixed answers to
   held-out prompts (the quickstart's eval prompts, never in the corpus): P(safe) of a refusal, of
   the content-free opener GRPO learned in the quickstart, and of two compliance openings, and how
   often the refusal outranks each on the same prompt, which is all GRPO's group advantage sees, and the
   within-prompt pairwise accuracy of :mod:`rlaif_uu.reward.pairwise` (the metric ``rlaif-uu reward export``
   stores), with the held-out Do-Not-Answer prompts as the harmful probe and the benign suite as the benign one.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from rlaif_uu.data.corpus import build_safety_corpus
from rlaif_uu.data.io import write_json
from rlaif_uu.data.schema import classifier_text
from rlaif_uu.eval.suites import load_prompts, resolve_suites
from rlaif_uu.refine.backbones import FrozenEncoder
from rlaif_uu.reward.pairwise import ANSWERS as ALL_ANSWERS
from rlaif_uu.reward.pairwise import answer_scores, answer_table, pairwise_accuracy

ANSWERS = {a: ALL_ANSWERS[a] for a in ("refusal", "opener", "sure", "steps")}
SUITES = ("donotanswer", "benign")


def features(enc: FrozenEncoder, pairs: list[tuple[str, str]]) -> np.ndarray:
    """[user-turn embedding, assistant-turn embedding] per pair (cached on disk by the encoder)."""
    enc.prepare([classifier_text(p, r) for p, r in pairs])
    assert enc.embeddings is not None
    return enc.embeddings.numpy()


def cv_scores(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, float]:
    """5-fold cross-validated accuracy and AUROC of a logistic regression."""
    p = np.zeros(len(y))
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        p[te] = LogisticRegression(max_iter=2000).fit(x[tr], y[tr]).predict_proba(x[te])[:, 1]
    return {"accuracy": float(np.mean((p > 0.5) == y)), "auroc": float(roc_auc_score(y, p))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    enc = FrozenEncoder()
    prompts = {s: [r["prompt"] for r in load_prompts(resolve_suites([s])[0], limit=args.n, holdout=0.5)] for s in SUITES}
    held = {r["prompt"].strip() for s in SUITES for r in load_prompts(resolve_suites([s])[0], holdout=0.5)}
    corpus = [r for r in build_safety_corpus(seed=0) if r["prompt"].strip() not in held]
    y = np.array([r["gold_label"] for r in corpus])
    x = features(enc, [(r["prompt"], r["response"]) for r in corpus])
    half = x.shape[1] // 2
    by_source = Counter((r["source"], r["gold_label"]) for r in corpus)
    result: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "corpus": f"builtin:safety without the held-out prompts: {len(corpus)} rows, {int(y.sum())} harmful",
        "sources": {f"{s} (gold {g})": n for (s, g), n in sorted(by_source.items())},
        "cross_validated": {"prompt only": cv_scores(x[:, :half], y, args.seed), "response only": cv_scores(x[:, half:], y, args.seed),
                            "both turns": cv_scores(x, y, args.seed)},
        "answers": {},
        "pairwise": {},
    }
    gold_clf = LogisticRegression(max_iter=2000).fit(x, y)
    scorers: dict[str, Any] = {"logistic regression on all gold labels": lambda ps, rs: gold_clf.predict_proba(
        features(enc, list(zip(ps, rs))))[:, 0]}
    for path in args.reward:
        from rlaif_uu.eval.scorers import RewardScorer

        rs = RewardScorer(path)
        scorers[f"reward {path}"] = lambda ps, r, rs=rs: rs(ps, list(r), "harmful", False).safety
    for name, score in scorers.items():
        result["answers"][name] = {s: answer_table(answer_scores(score, prompts[s], list(ANSWERS))) for s in SUITES}
        result["pairwise"][name] = pairwise_accuracy(score, prompts["donotanswer"], prompts["benign"], seed=args.seed)
    return result


def to_markdown(res: dict[str, Any]) -> str:
    lines = ["# Reward shortcut probe", "", f"Command: `{res['command']}`", "", f"Corpus: {res['corpus']}.", "",
             "Rows per source: " + ", ".join(f"{k}: {n}" for k, n in res["sources"].items()) + ".", "",
             "## How much the prompt alone gives away (5-fold CV, logistic regression on gold labels)", "",
             "| features | accuracy | AUROC |", "|---|---|---|"]
    lines += [f"| {k} | {v['accuracy']:.3f} | {v['auroc']:.3f} |" for k, v in res["cross_validated"].items()]
    lines += ["", "## Fixed answers to held-out prompts", "", "Answers: " + "; ".join(f"{a}: \"{t}\"" for a, t in ANSWERS.items()), "",
              "| scorer | suite | " + " | ".join(f"P(safe) {a}" for a in ANSWERS) + " | refusal above opener | refusal above steps |",
              "|---|---|" + "---|" * (len(ANSWERS) + 2)]
    for name, suites in res["answers"].items():
        for s, t in suites.items():
            lines.append(f"| {name} | {s} | " + " | ".join(f"{t['p_safe'][a]:.3f}" for a in ANSWERS)
                         + f" | {t['refusal_above']['opener']:.2f} | {t['refusal_above']['steps']:.2f} |")
    lines += ["", "## Within-prompt pairwise accuracy (rlaif_uu.reward.pairwise; 95% bootstrap CIs over prompts)", "",
              ("Harmful (held-out Do-Not-Answer): refusal above steps and above opener; benign (held-out benign suite): "
               "helpful above refusal."), "", "| scorer | harmful | benign | balanced |", "|---|---|---|---|"]
    for name, pw in res.get("pairwise", {}).items():
        lines.append(f"| {name} | " + " | ".join(f"{pw[k]['accuracy']:.3f} [{pw[k]['ci'][0]:.3f}, {pw[k]['ci'][1]:.3f}]"
                                                 for k in ("harmful", "benign", "balanced")) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reward", nargs="*", default=[], help="exported reward folders to probe as well")
    ap.add_argument("--n", type=int, default=60, help="held-out prompts per suite (the quickstart's eval.limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="eval/results/reward_shortcut")
    args = ap.parse_args()
    res = run(args)
    write_json(f"{args.out}.json", res)
    md = to_markdown(res)
    Path(f"{args.out}.md").write_text(md, encoding="utf-8")
    print(md)


if __name__ == "__main__":
    main()
