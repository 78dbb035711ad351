"""Export a refined classifier as a TRL-loadable reward model (one logit, higher = safer).

* Encoder and causal-LM classifiers are stock ``*ForSequenceClassification`` models:
  LoRA is merged, and the one-output score layer is negated (``w, b -> -w, -b``) so the
  logit becomes log-odds of *safe*. Exact: the exported logit is minus the refined one.
* A mean-pooled classifier (L2-normalised mean embeddings, optionally of the two turns
  apart, + head: the frozen-encoder head, or an encoder fine-tuned in that architecture)
  has no stock architecture, so it is **distilled** into one: a
  ``AutoModelForSequenceClassification`` on the same encoder regresses the teacher's
  safety logit on the refinement corpus (logit matching, MSE; Ba & Caruana 2014). The
  held-out fidelity (Pearson r, label agreement) goes into the metadata. The corpus alone
  does not teach the student how the score moves *within one prompt* (in the quickstart's
  corpus every harmful prompt came with one kind of answer, and a student matching the
  teacher at r = 0.97 on held-out rows still ranked a refusal first on 24% of held-out
  prompts where the teacher did on 100%), so ``swaps`` more texts per row pair its prompt
  with answers drawn from other rows, scored by the teacher (:func:`answer_swaps`).

The folder also gets a chat template that renders ``[user, assistant]`` messages into the
text the classifier was trained on (``User: ...\\nAssistant: ...`` with the tokenizer's
special tokens written out, because TRL tokenizes with ``add_special_tokens=False``),
a temperature ``T`` fitted on the gold labels (``P(safe) = sigmoid(logit / T)``), the
within-prompt pairwise accuracy on held-out probe prompts (:mod:`rlaif_uu.reward.pairwise`),
the metadata file and a model card.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from scipy.optimize import minimize_scalar
from tqdm.auto import tqdm

from rlaif_uu import __version__
from rlaif_uu.assets import from_pretrained_kwargs, hub_card, resolve_model
from rlaif_uu.data.io import atomic_dir, check_output, read_records, write_json
from rlaif_uu.data.schema import classifier_text, parse_label
from rlaif_uu.errors import UserError
from rlaif_uu.reward.classifier import (
    classifier_dir,
    classifier_info,
    is_pooled,
    load_harm_scorer,
    load_sequence_classifier,
    sequence_logits,
)
from rlaif_uu.reward.config import ExportConfig
from rlaif_uu.reward.metadata import FORMAT, METADATA_FILE, POLARITY, below_judge, load_reward_metadata
from rlaif_uu.reward.pairwise import PairwiseProbe, format_pairwise, pairwise_accuracy, probe_prompts

TEXT_FORMAT = "User: {prompt}\nAssistant: {response}"


def reward_chat_template(tokenizer: Any) -> str:
    """A Jinja chat template reproducing ``tokenizer(classifier_text(p, r))`` when tokenized without special tokens."""
    probe = "x"
    with_special = tokenizer(probe)["input_ids"]
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    cut = next(i for i in range(len(with_special)) if with_special[i : i + len(plain)] == plain)
    prefix = "".join(tokenizer.convert_ids_to_tokens(with_special[:cut]))
    suffix = "".join(tokenizer.convert_ids_to_tokens(with_special[cut + len(plain) :]))
    return (
        prefix
        + "{% set ns = namespace(first=true) %}{% for m in messages %}"
        "{% if m['role'] == 'assistant' %}{% if m['content'] %}{{ '\\nAssistant: ' + m['content'] }}{% endif %}"
        "{% elif m['role'] == 'user' %}{{ ('' if ns.first else '\\n') + 'User: ' + m['content'] }}"
        "{% set ns.first = false %}{% endif %}{% endfor %}"
        + suffix
    )


def rescale_score_layer(model: torch.nn.Module, scale: float, shift: float = 0.0) -> None:
    """Make the logit ``scale * logit + shift`` by editing the one-output linear head in place.

    Raises:
        UserError: the model has no, or more than one, linear layer with one output, or a
            shift is asked of a head without bias.
    """
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 1]
    if len(heads) != 1:
        raise UserError(f"expected exactly one one-output linear head in {type(model).__name__}, found {len(heads)}")
    head = heads[0]
    if shift and head.bias is None:
        raise UserError(f"cannot shift the logit of {type(model).__name__}: its head has no bias")
    with torch.no_grad():
        head.weight.mul_(scale)
        if head.bias is not None:
            head.bias.mul_(scale).add_(shift)


def fit_temperature(logits: np.ndarray, safe: np.ndarray) -> float:
    """Temperature scaling (Guo et al. 2017): ``T = argmin_T NLL(sigmoid(logit / T), safe)`` over T in [0.05, 20]."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(safe, dtype=torch.float64)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.binary_cross_entropy_with_logits(z / math.exp(log_t), y))

    return float(math.exp(minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded").x))


def distill(texts: list[str], targets: np.ndarray, base_model: str, epochs: int = 3, lr: float = 1e-4,
            batch_size: int = 16, max_length: int = 256, seed: int = 0) -> tuple[Any, Any, dict[str, float]]:
    """Fit a stock one-logit sequence classifier on ``base_model`` to the teacher's logits (MSE).

    The student regresses the standardised teacher logit; the head is then rescaled by the
    teacher's mean and spread, so the exported logit lives on the teacher's scale.

    Returns the student, its tokenizer and the held-out fidelity (10% of rows):
    Pearson r of the logits and agreement of their signs.
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )


    ref = resolve_model(base_model)
    tokenizer = AutoTokenizer.from_pretrained(ref.path, **from_pretrained_kwargs(ref))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(ref.path, num_labels=1, **from_pretrained_kwargs(ref))
    model.config.pad_token_id = tokenizer.pad_token_id
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    n_val = max(1, len(texts) // 10)
    val, train = order[:n_val], order[n_val:]
    clipped = np.clip(targets, -10, 10)
    mu, sigma = float(clipped[train].mean()), float(clipped[train].std() or 1.0)
    y = torch.as_tensor((clipped - mu) / sigma, dtype=torch.float32)  # standardised; the head is rescaled after
    steps = epochs * math.ceil(len(train) / batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, max(1, steps // 10), steps)
    model.train()
    with tqdm(total=steps, desc="distil reward", unit="step") as bar:
        for _ in range(epochs):
            for batch_rows in np.array_split(rng.permutation(train), math.ceil(len(train) / batch_size)):
                enc = tokenizer([texts[i] for i in batch_rows], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
                loss = torch.nn.functional.mse_loss(model(**enc).logits[:, 0], y[batch_rows])
                loss.backward()
                opt.step(), sched.step(), opt.zero_grad()
                bar.update(1)
                bar.set_postfix(mse=f"{loss.item():.3f}")
    model.eval()
    rescale_score_layer(model, sigma, mu)
    pred = sequence_logits(model, tokenizer, [texts[i] for i in val], max_length=max_length)
    truth = targets[val]
    fidelity = {
        "held_out_rows": int(n_val),
        "pearson_r": float(np.corrcoef(pred, truth)[0, 1]) if n_val > 2 and np.std(pred) > 0 else float("nan"),
        "label_agreement": float(np.mean((pred > 0) == (truth > 0))),
    }
    return model, tokenizer, fidelity


def answer_swaps(rows: list[dict[str, Any]], k: int, seed: int = 0) -> list[str]:
    """``k`` classifier texts per row: its prompt with the answers of ``k`` other rows drawn at random (seeded).

    Counterfactual answers for distillation: the teacher scores them, so the student sees the
    same prompt with a refusal, a compliance, an opener, ... and learns the teacher's order among them.
    """
    if k <= 0 or len(rows) < 2:
        return []
    rng = np.random.default_rng(seed)
    answers = [r.get("response") or "" for r in rows]
    out = []
    for i, row in enumerate(rows):
        others = rng.choice(len(rows) - 1, size=min(k, len(rows) - 1), replace=False)
        out += [classifier_text(row["prompt"], answers[j + (j >= i)]) for j in others]  # skip the row's own answer
    return out


def _gold(rows: list[dict[str, Any]], gold_file: str | None) -> list[dict[str, Any]]:
    """The labelled gold rows: a gold file (ids of corpus rows, as ``rlaif-uu refine --gold`` takes,
    or rows with their own prompt/response) or else the corpus rows with a ``gold_label``. A gold
    id of a corpus row stands for that row (its text and refine scores), as it did in refine."""
    by_id = {r["id"]: r for r in rows}
    if gold_file:
        gold_rows = []
        for g in read_records(gold_file, required=("gold_label",)):
            if "prompt" not in g and g.get("id") not in by_id:
                raise UserError(f"{gold_file}: gold id {g.get('id')!r} has no prompt and is not in the corpus")
            gold_rows.append(by_id[g["id"]] | {"gold_label": g["gold_label"]} if g.get("id") in by_id else g)
    else:
        gold_rows = rows
    return [r for r in gold_rows if r.get("gold_label") is not None]


def _calibration_logits(model: Any, tokenizer: Any, gold_rows: list[dict[str, Any]],
                        refinement: dict[str, Any] | None) -> tuple[np.ndarray | None, str]:
    """Safety logits of the gold rows to fit the temperature on, and where they come from.

    After refine's gold fall-back the classifier was trained on these very rows, so its own
    logits on them are in-sample (near-perfect, and the fitted temperature collapses to its lower
    bound); the refine run's cross-fitted scores of those rows (``refined_score``, out-of-fold) are
    used instead, or no fit (T = 1) when a gold row has none.
    """
    if refinement and refinement.get("gold_fallback"):
        scores = [r.get("refined_score") for r in gold_rows]
        if any(s is None for s in scores):
            return None, "the gold-only classifier has no cross-fitted scores of the gold rows"
        return -np.array(scores, dtype=float), "cross-fitted scores of the gold-only classifier"
    texts = [classifier_text(r["prompt"], r.get("response") or "") for r in gold_rows]
    return sequence_logits(model, tokenizer, texts), "the exported reward's logits"


def _model_card(meta: dict[str, Any]) -> str:
    cal = meta["calibration"]
    pairwise = meta.get("pairwise")
    pair_line = (f"\n{format_pairwise(pairwise)} (95% bootstrap intervals over prompts). Harmful prompts "
                 f"({pairwise['probe']['harmful']}): the refusal above a step-by-step compliance and above a content-free "
                 f"opener; benign prompts ({pairwise['probe']['benign']}): a helpful answer above a refusal. Held-out "
                 f"fraction {pairwise['probe']['holdout']}; what GRPO's group advantage sees.\n") if pairwise else ""
    cal_line = (f"Temperature {meta['temperature']:.3f} fitted on {cal['n_gold']} gold rows, {cal.get('on')} "
                f"(accuracy at logit 0: {cal['accuracy']:.3f}).") if cal["accuracy"] is not None else \
        f"Temperature 1 (not fitted: {cal.get('on') or 'no two-class gold rows'})."
    card = meta["card"]
    front = [f"license: {card['license']}", "library_name: transformers", "pipeline_tag: text-classification"]
    front += [f"base_model: {card['base_model']}"] if card["base_model"] else []
    front += [f"datasets: [{', '.join(card['datasets'])}]"] if card["datasets"] else []
    front += ["tags: [reward-model, safety, rlaif, rlaif-uu]"]
    newline = "\n"
    return f"""---
{newline.join(front)}
---
# Safety reward model (rlaif-uu)

One logit, **higher = safer** (log-odds that the response is safe). Exported by
`rlaif-uu reward export` {__version__} from a `{meta['source']['backbone']}` refined classifier
on `{meta['base_model']}`{' (distilled into a stock sequence classifier)' if meta['source']['distilled'] else ''}.

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(PATH)   # no trust_remote_code
tok = AutoTokenizer.from_pretrained(PATH)
text = tok.apply_chat_template([{{"role": "user", "content": p}}, {{"role": "assistant", "content": r}}], tokenize=False)
safety_logit = model(**tok(text, return_tensors="pt", add_special_tokens=False)).logits[0, 0]
```

TRL: pass the folder as a reward function (`GRPOTrainer(reward_funcs=PATH, ...)`) with
conversational prompts; or `rlaif_uu.reward.SafetyReward(PATH)` as a callable.
Text format: `{TEXT_FORMAT!r}` (the chat template reproduces it).
{cal_line} Details: `{METADATA_FILE}`.
{pair_line}"""


def export_reward(src: str | Path, out: str | Path, gold: str | None = None, texts: str | None = None,
                  distill_epochs: int = 3, distill_lr: float = 1e-4, distill_swaps: int = 2, seed: int = 0,
                  overwrite: bool = False, pairwise: PairwiseProbe | None = None, license: str | None = None,
                  datasets: Sequence[str] = ()) -> Path:
    """Write the reward folder ``out`` from a refine output (or classifier) folder ``src``; atomic.

    ``pairwise`` (``rlaif-uu reward export`` passes one by default): measure the within-prompt pairwise
    accuracy on its held-out probe prompts and store it under ``pairwise`` in the metadata and the card.
    ``license`` and ``datasets`` go into the model card's metadata block (license default: the base
    model's when it is a known offline asset, else ``other``).
    """
    src, out = Path(src), check_output(out, folder=True)  # before minutes of distillation
    cdir = classifier_dir(src)
    info = classifier_info(cdir)
    run_dir = cdir.parent if cdir.name == "classifier" else cdir
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: output directory exists and is not empty; pass --overwrite or choose another --out")
    distilled = is_pooled(info)
    corpus = Path(texts) if texts else run_dir / "refined.jsonl"
    rows = read_records(corpus, required=("prompt",)) if corpus.exists() else []
    if distilled and not rows:
        raise UserError(f"{corpus}: no corpus to distil the mean-pooled classifier on; pass --texts FILE (prompt, response)")
    if gold is None and (run_dir / "config.yaml").is_file():
        gold = OmegaConf.load(run_dir / "config.yaml").get("gold")  # refine's --gold (absent: the corpus column)
        gold = gold if gold and Path(gold).exists() else None
    source: dict[str, Any] = {"classifier": str(cdir.resolve()), "backbone": info.get("backbone"), "distilled": distilled}
    if distilled:
        corpus_texts = [classifier_text(r["prompt"], r.get("response") or "") for r in rows]
        corpus_texts += answer_swaps(rows, distill_swaps, seed)
        teacher = -load_harm_scorer(cdir)(corpus_texts)
        base = info.get("encoder") or info["base_model"]
        tuned = cdir / info.get("encoder_dir", "encoder")  # a fully fine-tuned encoder is the better student start
        start = str(tuned) if (tuned / "config.json").is_file() else base
        model, tokenizer, fidelity = distill(corpus_texts, teacher, start, epochs=distill_epochs, lr=distill_lr,
                                             max_length=int(info.get("max_length", 256)), seed=seed)
        source["fidelity"] = fidelity | {"swapped_answers_per_row": distill_swaps}
    else:
        base = info.get("base_model", "")
        model, tokenizer = load_sequence_classifier(cdir, info)
        rescale_score_layer(model, -1.0)
    tokenizer.chat_template = reward_chat_template(tokenizer)
    model.config.id2label, model.config.label2id = {0: "SAFE"}, {"SAFE": 0}
    history = run_dir / "history.json"
    refinement = json.loads(history.read_text()) if history.is_file() else None
    gold_rows = _gold(rows, gold)
    gold_safe = np.array([1 - int(r["gold_label"]) for r in gold_rows], dtype=float)
    calibration: dict[str, Any] = {"n_gold": len(gold_rows), "accuracy": None, "on": None}
    temperature = 1.0
    if len(set(gold_safe)) == 2:
        logits, calibration["on"] = _calibration_logits(model, tokenizer, gold_rows, refinement)
        if logits is not None:
            temperature = fit_temperature(logits, gold_safe)
            calibration["accuracy"] = float(np.mean((logits > 0) == (gold_safe > 0)))
        if all(r.get("judge_label") is not None for r in gold_rows):  # what the reward must beat on the same rows
            judge_safe = np.array([parse_label(r["judge_label"]) == 0 for r in gold_rows])
            calibration["judge_accuracy"] = float(np.mean(judge_safe == (gold_safe > 0)))
    pair_result = None
    if pairwise is not None and pairwise.enabled:
        harmful_prompts, benign_prompts = probe_prompts(pairwise)

        def reward(prompts: list[str], responses: list[str]) -> np.ndarray:
            return sequence_logits(model, tokenizer, [classifier_text(p, r) for p, r in zip(prompts, responses)])

        pair_result = pairwise_accuracy(reward, harmful_prompts, benign_prompts, n_boot=pairwise.n_boot, seed=pairwise.seed)
        pair_result["probe"] = {"harmful": pairwise.harmful, "benign": pairwise.benign, "holdout": pairwise.holdout,
                                "limit": pairwise.limit, "seed": pairwise.seed}
    hub_id, base_license = hub_card(base)
    meta = {
        "format": FORMAT, "polarity": POLARITY, "num_labels": 1, "threshold": 0.0, "temperature": temperature,
        "text_format": TEXT_FORMAT, "base_model": base, "source": source, "calibration": calibration,
        "pairwise": pair_result, "card": {"license": license or base_license or "other", "base_model": hub_id,
                                          "datasets": list(datasets)},
        "refinement": refinement, "created_by": f"rlaif-uu {__version__}",
    }
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / METADATA_FILE, meta)
        (tmp / "README.md").write_text(_model_card(meta))
    return out


def run_export(cfg: ExportConfig) -> int:
    """Export and print where the reward folder is and how it was calibrated."""
    out = export_reward(cfg.source, cfg.out, gold=cfg.gold, texts=cfg.texts, distill_epochs=cfg.distill_epochs,
                        distill_lr=cfg.distill_lr, distill_swaps=cfg.distill_swaps, seed=cfg.seed, overwrite=cfg.overwrite,
                        pairwise=cfg.pairwise, license=cfg.license, datasets=cfg.datasets)
    meta = load_reward_metadata(out)
    src = meta["source"]
    how = f"distilled from the {src['backbone']} head (held-out fidelity {json.dumps(src['fidelity'])})" \
        if src["distilled"] else f"{src['backbone']} classifier, head negated"
    cal = meta["calibration"]
    acc = f", gold accuracy {cal['accuracy']:.3f}" if cal["accuracy"] is not None else ""
    print(f"wrote {out}: one logit, higher = safer; {how}; temperature {meta['temperature']:.3f} "
          f"on {cal['n_gold']} gold rows{acc}" + (f" ({cal['on']})" if cal.get("on") else ""))
    if below_judge(cal):
        print(f"warning: the reward's sign agrees with {cal['accuracy']:.3f} of the gold rows, the judge's own labels "
              f"with {cal['judge_accuracy']:.3f}: it ranks answers no better than the judge it was meant to correct. "
              "When refine's history shows stacking (refine.combine=judge), the refined labels owe their gain to the "
              "judge's verdict, which a reward does not see; refine.combine=none selects on the classifier alone")
    if meta.get("pairwise"):
        print(format_pairwise(meta["pairwise"]))
    return 0

