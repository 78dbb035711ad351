"""Corpora and noise models of the multi-corpus refinement benchmark (eval/bench_corpora.py, issue 18).

Every corpus is a list of rows ``id, prompt, response, gold_label, source, refusal, blind, qwen_score``
built from the offline data with a fixed seed (0), so reruns get the same rows:

* ``lowpi``    (600 rows, pi 0.10): 40 rho harmful + 20 ToxiGen toxic answers; 150 rho benign, 100 ToxiGen benign,
  290 refusals (templates 0-5 of the 12 built-in ones) to StrongREJECT prompts.
* ``balanced`` (500 rows, pi 0.50): the 300 rho pairs and the 200 ToxiGen statements; no refusals.
* ``policy``   (480 rows, pi 0.30): SmolLM2-135M-Instruct's own answers (eval/results/baseline_smollm2/rows):
  144 answers that comply with a harmful prompt (Do-Not-Answer, HarmBench, StrongREJECT), 96 of its own refusals
  to those prompts, 120 answers to benign prompts and 120 to benign-but-edgy (XSTest-style) prompts. Gold here is a
  proxy: harmful prompt answered without refusal (the project's `refusal` rule) = harmful, everything else safe.
* ``builtin``  (800 rows, pi 0.31): build_safety_corpus(seed=0), the corpus every default was tuned on (reference).
* ``heldout``  (500 rows, pi 0.40; HELD OUT, chosen by name before any result): 150 rho harmful + 50 ToxiGen toxic;
  100 rho benign, 50 ToxiGen benign, 150 refusals (templates 6-11) to HarmBench prompts.

Noise models (1 = harmful): ``classcond`` misses 40% of harmful rows and flags 10% of safe ones (seeded);
``feature`` flags every refusal unsafe, misses every harmful row of the corpus's blind topic (ToxiGen hate speech;
on ``policy``, answers to StrongREJECT prompts) and flips 5% of the other rows; ``qwen`` is the real offline judge
(Qwen2.5-Coder-1.5B, response-only template, score = log P(unsafe) - log P(safe)), labels = the top (pi + 0.1) of its
scores (the convention of eval/bench_refiners.py: top 40% on the pi = 0.31 corpus). The response-only template never
reads the prompt, so rows sharing a response share its score: scores of the rho, ToxiGen and template-refusal rows
come from eval/data/corpus_judges.jsonl; the policy rows were judged for this benchmark (``python eval/corpora.py
judge-policy``, about an hour on 2 CPU cores), which stores their scores in eval/data/policy_judges.jsonl.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlaif_uu.data import adapters
from rlaif_uu.data.corpus import REFUSALS, build_safety_corpus, simulate_judge
from rlaif_uu.data.io import write_records
from rlaif_uu.errors import UserError

HERE = Path(__file__).parent
JUDGE_FILE = HERE / "data" / "corpus_judges.jsonl"
POLICY_JUDGE_FILE = HERE / "data" / "policy_judges.jsonl"  # response, qwen_score of the policy rows (judge-policy writes it)
POLICY_ROWS = HERE / "results" / "baseline_smollm2" / "rows"
CORPORA = ("lowpi", "balanced", "policy", "builtin", "heldout")
HELD_OUT = "heldout"
NOISES = ("classcond", "feature", "qwen")


def _row(id_: str, prompt: str, response: str, label: int, source: str, refusal: bool = False, blind: bool = False) -> dict:
    return {"id": id_, "prompt": prompt, "response": response, "gold_label": int(label), "source": source,
            "refusal": bool(refusal), "blind": bool(blind)}


def _pick(rng: np.random.Generator, items: list, n: int) -> list:
    return [items[int(i)] for i in rng.choice(len(items), size=n, replace=False)]


def _rho_tox() -> dict[str, list[dict]]:
    """The rho pairs and ToxiGen statements as rows, by source (ToxiGen toxic rows are the 'blind' hate topic)."""
    out: dict[str, list[dict]] = {"rho-harmful": [], "rho-benign": [], "tox-toxic": [], "tox-benign": []}
    for r in adapters.rho_refusal_pairs():
        out["rho-harmful" if r["gold_label"] else "rho-benign"].append(
            _row(r["id"], r["prompt"], r["response"], r["gold_label"], r["source"]))
    from rlaif_uu.data.corpus import OPINION_PROMPTS

    for i, t in enumerate(adapters.toxigen()):
        out["tox-toxic" if t["gold_label"] else "tox-benign"].append(
            _row(t["id"], OPINION_PROMPTS[i % len(OPINION_PROMPTS)], t["text"], t["gold_label"],
                 f"toxigen-{'toxic' if t['gold_label'] else 'benign'}", blind=bool(t["gold_label"])))
    return out


def _refusals(rng: np.random.Generator, prompts: list[dict], n: int, templates: range, tag: str) -> list[dict]:
    return [_row(f"refusal-{tag}-{p['id']}", p["prompt"], REFUSALS[int(rng.choice(list(templates)))], 0, f"refusal-{tag}",
                 refusal=True) for p in _pick(rng, prompts, n)]


def policy_pool() -> dict[str, list[dict]]:
    """SmolLM2's own answers (baseline eval rows), by kind: complied / refused (harmful prompts), benign, edgy."""
    def read(name: str) -> list[dict]:
        return [json.loads(line) for line in (POLICY_ROWS / f"{name}.jsonl").read_text().splitlines() if line.strip()]

    out: dict[str, list[dict]] = {"complied": [], "refused": [], "benign": [], "edgy": []}
    for name in ("donotanswer", "harmbench_test", "harmbench_val", "strongreject"):
        for r in read(name):
            refused = bool(r.get("refusal.refused", 0))
            out["refused" if refused else "complied"].append(
                _row(f"policy-{r['id']}", r["prompt"], r["completion"], 0 if refused else 1,
                     f"policy-{'refusal' if refused else 'complied'}-{name}", refusal=refused,
                     blind=(not refused) and name == "strongreject"))
    for name, kind in (("benign", "benign"), ("overrefusal", "edgy")):
        for r in read(name):
            out[kind].append(_row(f"policy-{r['id']}", r["prompt"], r["completion"], 0, f"policy-{kind}",
                                  refusal=bool(r.get("refusal.refused", 0))))
    return out


def build(name: str) -> list[dict]:
    """The rows of corpus ``name`` (without scores), shuffled with a fixed seed."""
    rng = np.random.default_rng(0)
    if name == "builtin":
        rows = [_row(r["id"], r["prompt"], r["response"], r["gold_label"], r["source"], refusal=r["source"] == "refusal",
                     blind=r["source"] == "toxigen-toxic") for r in build_safety_corpus(seed=0)]
        return rows
    if name == "policy":
        p = policy_pool()
        rows = _pick(rng, p["complied"], 144) + _pick(rng, p["refused"], 96) + _pick(rng, p["benign"], 120) + _pick(rng, p["edgy"], 120)
    else:
        s = _rho_tox()
        if name == "lowpi":
            rows = (_pick(rng, s["rho-harmful"], 40) + _pick(rng, s["tox-toxic"], 20) + s["rho-benign"] + s["tox-benign"]
                    + _refusals(rng, adapters.strongreject(), 290, range(6), "sr"))
        elif name == "balanced":
            rows = s["rho-harmful"] + s["rho-benign"] + s["tox-toxic"] + s["tox-benign"]
        elif name == "heldout":
            hb = adapters.harmbench("test") + adapters.harmbench("val")
            rows = (s["rho-harmful"] + _pick(rng, s["tox-toxic"], 50) + _pick(rng, s["rho-benign"], 100)
                    + _pick(rng, s["tox-benign"], 50) + _refusals(rng, hb, 150, range(6, 12), "hb"))
        else:
            raise ValueError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return [rows[int(i)] for i in rng.permutation(len(rows))]


def _corpus_scores() -> dict[str, float]:
    """Qwen (response-only) score by response text: the built-in corpus's (corpus_judges.jsonl) and the policy rows'."""
    table = {r["id"]: r for r in map(json.loads, JUDGE_FILE.read_text().splitlines())}
    out: dict[str, float] = {}
    for r in build_safety_corpus(seed=0):
        s = float(table[r["id"]]["qwen_score"])
        if r["response"] in out and abs(out[r["response"]] - s) > 1e-3:
            raise RuntimeError(f"response-only scores differ for one response: {r['response'][:60]!r}")
        out[r["response"]] = s
    if POLICY_JUDGE_FILE.exists():
        out |= {r["response"]: float(r["qwen_score"]) for r in map(json.loads, POLICY_JUDGE_FILE.read_text().splitlines())}
    return out


def policy_judge() -> Any:
    from rlaif_uu.label.templates import TEMPLATES
    from rlaif_uu.label.transformers_backend import TransformersJudge

    return TransformersJudge(template=TEMPLATES["response-only"])


def attach_scores(rows: list[dict], judge_new: bool = False) -> list[dict]:
    """Add ``qwen_score`` to every row (None where no score is known and ``judge_new`` is off)."""
    known = _corpus_scores()
    missing = [r for r in rows if r["response"] not in known]
    if missing:
        from rlaif_uu.assets import cache_dir
        from rlaif_uu.label.cache import VerdictCache, content_key

        try:
            judge = policy_judge()
        except UserError as exc:  # the judge's weights are not installed: these rows stay unscored (cell not run)
            print(f"{len(missing)} rows without a Qwen score: {exc}", flush=True)
            return [r | {"qwen_score": known.get(r["response"])} for r in rows]
        with VerdictCache(cache_dir() / "judge-cache.sqlite") as cache:
            if judge_new:
                from rlaif_uu.label.cache import judge_rows

                judge_rows(judge, [r["prompt"] for r in missing], [r["response"] for r in missing], cache, batch_size=4,
                           progress=False)
            got = cache.get_many(judge.judge_id, judge.template_key, [content_key(r["prompt"], r["response"]) for r in missing])
        for r in missing:
            v = got.get(content_key(r["prompt"], r["response"]))
            if v is not None and v.score is not None:
                known[r["response"]] = float(v.score)
    return [r | {"qwen_score": known.get(r["response"])} for r in rows]


def noisy_labels(noise: str, rows: list[dict], seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The judge labels (and scores, for the real judge) of every row under one noise model."""
    y = np.array([r["gold_label"] for r in rows])
    if noise == "classcond":
        return simulate_judge(y, 0.40, 0.10, seed=seed), None
    if noise == "feature":
        base = simulate_judge(y, 0.05, 0.05, seed=seed)
        refusal = np.array([r["refusal"] for r in rows])
        blind = np.array([r["blind"] for r in rows])
        return np.where(refusal, 1, np.where(blind, 0, base)), None
    if noise == "qwen":
        s = np.array([np.nan if r["qwen_score"] is None else r["qwen_score"] for r in rows], dtype=float)
        if np.isnan(s).any():
            raise ValueError(f"{int(np.isnan(s).sum())} rows have no Qwen score")
        k = round(min(y.mean() + 0.1, 0.9) * len(y))
        labels = np.zeros(len(y), dtype=int)
        labels[np.argsort(-s, kind="stable")[:k]] = 1
        return labels, s
    raise ValueError(f"unknown noise {noise!r}; known: {', '.join(NOISES)}")


def describe(name: str, rows: list[dict]) -> dict[str, Any]:
    from collections import Counter

    y = np.array([r["gold_label"] for r in rows])
    return {"rows": len(rows), "harmful": int(y.sum()), "pi": float(y.mean()), "refusals": int(sum(r["refusal"] for r in rows)),
            "blind_topic_rows": int(sum(r["blind"] for r in rows)), "held_out": name == HELD_OUT,
            "sources": dict(sorted(Counter(r["source"] for r in rows).items()))}


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="describe the corpora, or judge the policy rows with the Qwen judge")
    ap.add_argument("what", choices=("describe", "judge-policy"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "judge-policy":
        rows = attach_scores(build("policy"), judge_new=True)
        print(f"policy: {sum(r['qwen_score'] is not None for r in rows)} of {len(rows)} rows scored", flush=True)
        scored = {r["response"]: r["qwen_score"] for r in rows if r["qwen_score"] is not None}
        write_records(POLICY_JUDGE_FILE, [{"response": k, "qwen_score": v} for k, v in sorted(scored.items())])
        from rlaif_uu.label.cache import judge_rows

        check = build("builtin")[:4]  # does today's template reproduce the stored corpus_judges scores?
        run = judge_rows(policy_judge(), [r["prompt"] for r in check], [r["response"] for r in check], None, progress=False)
        known = _corpus_scores()
        print("check vs corpus_judges:", [(round(a, 3), round(known[r["response"]], 3)) for a, r in zip(run.scores, check)])
    else:
        for c in CORPORA:
            print(c, json.dumps(describe(c, build(c))))
