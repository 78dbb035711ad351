"""Mean-pooled sentence-encoder classifiers that train end to end, and the cache of frozen bottom layers.

The classifier is the frozen probe's architecture (:class:`~rlaif_uu.refine.backbones.FrozenEncoder`:
mean-pooled, L2-normalised embeddings of each text segment, concatenated, then a
head) with the encoder made trainable. When only the top layers train, the hidden
states after the frozen bottom layers are computed once (:func:`bottom_hidden_states`)
and batches feed them straight to the top layers (:func:`padded_hidden_states`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rlaif_uu.assets import from_pretrained_kwargs, resolve_model
from rlaif_uu.data.schema import split_classifier_text
from rlaif_uu.refine.heads import Head


class PooledClassifier(torch.nn.Module):
    """Encoder → mean pooling → L2 norm (per segment, concatenated) → a head over the concatenation: the frozen probe, trainable.

    Inputs are either token ids (``s{k}_input_ids``, the full encoder runs) or the cached
    hidden states after the first ``start`` layers (``s{k}_hidden``, only the top layers run:
    BERT-style encoders whose bottom layers are frozen).
    """

    def __init__(self, encoder: torch.nn.Module, classifier: torch.nn.Module, n_segments: int, start: int = 0) -> None:
        super().__init__()
        self.encoder, self.classifier, self.n_segments, self.start = encoder, classifier, n_segments, start

    def _top_layers(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        attn = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden, attention_mask=mask)
        for layer in self.encoder.encoder.layer[self.start :]:
            hidden = layer(hidden, attn)
        return hidden

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        pooled = []
        for k in range(self.n_segments):
            mask = batch[f"s{k}_attention_mask"]
            if f"s{k}_hidden" in batch:
                hidden = self._top_layers(batch[f"s{k}_hidden"], mask)
            else:
                hidden = self.encoder(input_ids=batch[f"s{k}_input_ids"], attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled.append(torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1), dim=-1))
        return self.classifier(torch.cat(pooled, dim=-1).float())


def bottom_hidden_states(encoder: Any, tokenizer: Any, texts: list[str], start: int, max_length: int,
                         batch_size: int = 64) -> list[torch.Tensor]:
    """Per text, the (length × hidden) states after the first ``start`` layers of ``encoder`` (CPU, no padding)."""
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for i in tqdm(range(0, len(texts), batch_size), desc="cache bottom layers", unit="batch", disable=None):
            batch = tokenizer(texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(encoder.device)
            hidden = encoder(**batch, output_hidden_states=True).hidden_states[start]
            rows += [hidden[j, : int(n)].cpu() for j, n in enumerate(batch["attention_mask"].sum(1))]
    return rows


def padded_hidden_states(cache: list[list[torch.Tensor]], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """The :class:`PooledClassifier` inputs ``s{k}_hidden`` / ``s{k}_attention_mask`` of ``rows``, right-padded."""
    out: dict[str, torch.Tensor] = {}
    for k, seg in enumerate(cache):
        states = [seg[i] for i in rows]
        lengths = torch.tensor([len(h) for h in states])
        out[f"s{k}_hidden"] = torch.nn.utils.rnn.pad_sequence(states, batch_first=True)
        out[f"s{k}_attention_mask"] = (torch.arange(int(lengths.max()))[None, :] < lengths[:, None]).long()
    return out


def load_pooled_scorer(path: str | Path, batch_size: int = 32) -> Callable[[list[str]], np.ndarray]:
    """``texts -> harm logits`` (higher = harmful) of a saved mean-pooled encoder classifier.

    Reads the folder :meth:`rlaif_uu.refine.backbones.FineTunedEncoder.save` writes with
    ``pooling='mean'``: ``classifier.json``, ``head.safetensors`` and ``encoder/`` (full
    weights, or a LoRA adapter over ``base_model``).
    """
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer


    path = Path(path)
    info = json.loads((path / "classifier.json").read_text())
    enc_dir = path / info.get("encoder_dir", "encoder")
    tokenizer = AutoTokenizer.from_pretrained(enc_dir)
    if (enc_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        ref = resolve_model(info["base_model"])
        base = AutoModel.from_pretrained(ref.path, **from_pretrained_kwargs(ref))
        encoder = PeftModel.from_pretrained(base, str(enc_dir)).merge_and_unload()
    else:
        encoder = AutoModel.from_pretrained(enc_dir, use_safetensors=True, trust_remote_code=False)
    state = load_file(str(path / "head.safetensors"))
    head = Head(state["mean"], state["std"], 0)
    head.load_state_dict(state)
    model = PooledClassifier(encoder, head, 2 if info.get("segments") else 1).eval()
    max_length = int(info.get("max_length", 128))

    def score(texts: list[str]) -> np.ndarray:
        parts = [list(p) for p in zip(*(split_classifier_text(t) for t in texts))] if info.get("segments") else [list(texts)]
        out: list[np.ndarray] = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                batch: dict[str, torch.Tensor] = {}
                for k, part in enumerate(parts):
                    enc = tokenizer(part[i : i + batch_size], padding=True, truncation=True, max_length=max_length,
                                    return_tensors="pt")
                    batch |= {f"s{k}_input_ids": enc["input_ids"], f"s{k}_attention_mask": enc["attention_mask"]}
                out.append(model(**batch).numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    return score
