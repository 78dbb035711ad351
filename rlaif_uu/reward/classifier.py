"""Load a refined classifier folder (``rlaif-uu refine`` writes ``OUT/classifier/``) as a text scorer.

The scorer maps classifier texts (:func:`rlaif_uu.data.schema.classifier_text`) to the
refinement's logit, **higher = more harmful**; the reward export flips the sign.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlaif_uu.assets import from_pretrained_kwargs, resolve_model
from rlaif_uu.errors import UserError
from rlaif_uu.reward.metadata import check_safetensors, read_json

HarmScorer = Callable[[list[str]], np.ndarray]


def classifier_dir(path: str | Path) -> Path:
    """The classifier folder of a refine output folder, or ``path`` itself when it is one.

    Raises:
        UserError: no ``classifier.json`` in ``path`` or ``path/classifier``.
    """
    path = Path(path)
    for cand in (path, path / "classifier"):
        if (cand / "classifier.json").is_file():
            return cand
    for cand in (path / "classifier", path):
        if cand.is_dir() and any(cand.glob("*.safetensors")):
            raise UserError(f"{cand}: classifier.json is missing, so the classifier cannot be rebuilt (the folder is damaged "
                            "or was copied in part); rerun `rlaif-uu refine` or copy the whole --out folder")
    if (path / "history.json").is_file():
        raise UserError(f"{path}: this refine run saved no classifier (no iteration was trained); "
                        "rerun `rlaif-uu refine` with at least one iteration")
    raise UserError(f"{path}: not a refined classifier (no classifier.json here or in {path / 'classifier'}); "
                    "pass the --out folder of `rlaif-uu refine`")


def classifier_info(path: str | Path) -> dict[str, Any]:
    """The ``classifier.json`` description of a refined classifier folder, with its weight files checked.

    Raises:
        UserError: a corrupt ``classifier.json``, or missing or truncated weights.
    """
    cdir = classifier_dir(path)
    redo = "rerun `rlaif-uu refine` (or copy the whole --out folder again)"
    info = read_json(cdir / "classifier.json", redo)
    if is_pooled(info):
        check_safetensors(cdir, "head", redo)
    if info.get("backbone") != "frozen":
        weights = cdir / info.get("encoder_dir", "encoder") if is_pooled(info) else cdir
        check_safetensors(weights, "adapter_model" if (weights / "adapter_config.json").is_file() else "model", redo)
    return info


def is_pooled(info: dict[str, Any]) -> bool:
    """Whether a classifier is mean-pooled embeddings + head (frozen, or an encoder trained that way): no stock class."""
    return info.get("backbone") == "frozen" or info.get("pooling") == "mean+l2"


def load_sequence_classifier(path: Path, info: dict[str, Any], dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """A one-logit ``AutoModelForSequenceClassification`` (LoRA merged) and its tokenizer from a saved folder.

    A QLoRA classifier's base is loaded in NF4 as in training and dequantized, so the merged
    weights are the ones the adapter was trained against (not the original full-precision base).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer


    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if (path / "adapter_config.json").is_file():
        from peft import PeftModel

        ref = resolve_model(info["base_model"])
        kwargs: dict[str, Any] = {"num_labels": 1, "dtype": dtype, **from_pretrained_kwargs(ref)}
        if info.get("peft") == "qlora":  # the adapter learned on the NF4 base: rebuild that base exactly, then dequantize
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                               bnb_4bit_compute_dtype=torch.float32)
        base = AutoModelForSequenceClassification.from_pretrained(ref.path, **kwargs)
        if info.get("peft") == "qlora":
            base = base.dequantize(dtype=dtype)
        base.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype, use_safetensors=True, trust_remote_code=False)
    if model.config.num_labels != 1:
        raise UserError(f"{path}: classifier has {model.config.num_labels} labels; refinement classifiers have one")
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.eval(), tokenizer


def sequence_logits(model: Any, tokenizer: Any, texts: list[str], batch_size: int = 16, max_length: int = 512,
                    add_special_tokens: bool = True) -> np.ndarray:
    """``logits[:, 0]`` of a sequence classifier over ``texts``, batched, right-padded, no gradients."""
    out: list[np.ndarray] = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt", add_special_tokens=add_special_tokens, padding_side="right")
            out.append(model(**batch.to(device)).logits[:, 0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def load_harm_scorer(path: str | Path) -> HarmScorer:
    """A callable ``texts -> harm logits`` for any refined classifier (frozen head, encoder, causal LM)."""
    path = classifier_dir(path)
    info = classifier_info(path)
    if info.get("backbone") == "frozen":
        from safetensors.torch import load_file

        from rlaif_uu.refine.backbones import FrozenEncoder

        frozen = FrozenEncoder(model=info["encoder"], head=info["head"], hidden=info.get("hidden", 0) or 256,
                               max_length=info.get("max_length", 256), segments=info.get("segments", False))

        def frozen_score(texts: list[str]) -> np.ndarray:
            frozen.prepare(list(texts))
            head = frozen.new_model(0)
            head.load_state_dict(load_file(str(path / "head.safetensors")))
            with torch.no_grad():
                return head.eval()(frozen.embeddings).float().numpy()

        return frozen_score
    if is_pooled(info):
        from rlaif_uu.refine.pooled import load_pooled_scorer

        return load_pooled_scorer(path)
    model, tokenizer = load_sequence_classifier(path, info)
    max_length = int(info.get("max_length", 512))
    return lambda texts: sequence_logits(model, tokenizer, list(texts), max_length=max_length)
