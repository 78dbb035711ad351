"""The three classifier families refinement can train (one logit per row, higher = more harmful).

(a) :class:`FrozenEncoder`: a sentence encoder (MiniLM by default) run once, its
    mean-pooled embeddings cached on disk, and a linear or MLP head trained on
    top: the fast path.
(b) :class:`FineTunedEncoder`: the frozen probe's architecture with the encoder
    itself trained (all layers, the top k layers, or LoRA), the head warm-started
    from a linear probe (LP-FT); ``pooling='cls'`` is the plain
    ``AutoModelForSequenceClassification`` with one label.
(c) :class:`CausalLM`: a causal LM with an affine head on the last token
    (``AutoModelForSequenceClassification``, e.g. ``LlamaForSequenceClassification``),
    trained with LoRA, or QLoRA on an NF4 4-bit base: the paper's set-up.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from rlaif_uu.assets import cache_dir, from_pretrained_kwargs, resolve_model
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.data.io import atomic_path, write_json
from rlaif_uu.data.schema import split_classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.refine.heads import HEADS, FactoredHead, Head
from rlaif_uu.refine.pooled import PooledClassifier, bottom_hidden_states, padded_hidden_states
from rlaif_uu.refine.train import fit


def default_device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    ref = resolve_model(model)
    tok = AutoTokenizer.from_pretrained(ref.path, **from_pretrained_kwargs(ref))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


class FrozenEncoder:
    """(a) Frozen sentence encoder + trainable head on cached embeddings."""

    name = "frozen"

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        head: str = "linear",
        hidden: int = 256,
        epochs: int = 100,
        batch_size: int = 128,
        lr: float = 1e-2,
        max_length: int = 256,
        embed_batch_size: int = 64,
        standardize: bool = False,
        segments: bool = True,
        weight_decay: float = 0.0,
    ) -> None:
        check_choice("head", head, HEADS)
        if head.startswith("factored") and not segments:
            raise UserError(f"head '{head}' scores the request and the answer apart; it needs segments=true")
        self.model_name, self.head = model, head
        self.hidden = hidden if head.endswith("mlp") else 0
        self.epochs, self.batch_size, self.lr = epochs, batch_size, lr
        self.max_length, self.embed_batch_size = max_length, embed_batch_size
        self.standardize, self.segments, self.weight_decay = standardize, segments, weight_decay
        self.embeddings: torch.Tensor | None = None

    def _cache_file(self, texts: list[str]) -> Path:
        h = hashlib.sha256(f"{self.model_name}\x00{self.max_length}".encode())
        for t in texts:
            h.update(t.encode())
            h.update(b"\x00")
        return cache_dir() / "embeddings" / f"{h.hexdigest()[:24]}.npy"

    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised encoder embeddings (sentence-transformers convention)."""
        from transformers import AutoModel

        ref = resolve_model(self.model_name)
        tok = _load_tokenizer(self.model_name)
        enc = AutoModel.from_pretrained(ref.path, **from_pretrained_kwargs(ref)).to(default_device()).eval()
        out = []
        with torch.no_grad():
            for start in tqdm(range(0, len(texts), self.embed_batch_size), desc="embed", unit="batch"):
                batch = tok(
                    texts[start : start + self.embed_batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(enc.device)
                hidden = enc(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out)

    def _cached_embed(self, texts: list[str]) -> np.ndarray:
        path = self._cache_file(texts)
        if path.exists():
            return np.load(path)
        emb = self.embed(texts)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, emb)
        return emb

    def prepare(self, texts: list[str]) -> None:
        """Load embeddings from the disk cache, or compute and cache them.

        With ``segments`` the user turn and the assistant turn are embedded apart and
        concatenated, so a refusal and a compliance to the same request stay far apart
        (one mean-pooled vector of the whole exchange is dominated by the request's topic).
        """
        if self.segments:
            parts = list(zip(*(split_classifier_text(t) for t in texts)))
            emb = np.concatenate([self._cached_embed(list(p)) for p in parts], axis=1)
        else:
            emb = self._cached_embed(texts)
        self.embeddings = torch.from_numpy(emb)

    def new_model(self, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        assert self.embeddings is not None, "call prepare() first"
        e = self.embeddings
        head = FactoredHead if self.head.startswith("factored") else Head
        if not self.standardize:
            return head(torch.zeros(e.shape[1]), torch.ones(e.shape[1]), self.hidden)
        return head(e.mean(0), e.std(0).clamp(min=1e-6), self.hidden)

    def inputs(self, rows: np.ndarray) -> dict[str, Any]:
        assert self.embeddings is not None, "call prepare() first"
        return {"x": self.embeddings[torch.as_tensor(rows)]}

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(out_dir, "head.safetensors"))
        write_json(
            os.path.join(out_dir, "classifier.json"),
            {"backbone": self.name, "encoder": self.model_name, "head": self.head, "hidden": self.hidden,
             "pooling": "mean+l2", "segments": self.segments, "max_length": self.max_length, "polarity": "logit > 0 = harmful"},
        )


class _SeqCls(torch.nn.Module):
    """Wraps an ``AutoModelForSequenceClassification`` with one label into ``inputs -> logits[:, 0]``."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        return self.inner(**batch).logits[:, 0]


class _TransformerClassifier:
    """Shared code of (b) and (c): tokenised rows, a one-logit sequence classifier, optional (Q)LoRA."""

    name = "transformer"
    lora_targets: list[str] | str = "all-linear"

    def __init__(
        self,
        model: str,
        peft: str = "lora",
        epochs: int = 3,
        batch_size: int = 16,
        lr: float = 1e-4,
        max_length: int = 256,
        lora_r: int = 8,
        lora_alpha: int = 32,
        trust_remote_code: bool = False,
    ) -> None:
        check_choice("peft", peft, ("none", "lora", "qlora"))
        self.model_name, self.peft = model, peft
        self.epochs, self.batch_size, self.lr, self.max_length = epochs, batch_size, lr, max_length
        self.lora_r, self.lora_alpha, self.trust_remote_code = lora_r, lora_alpha, trust_remote_code
        self.texts: list[str] = []
        self.tokenizer: Any = None
        self.device = default_device()

    def prepare(self, texts: list[str]) -> None:
        self.texts = texts
        self.tokenizer = _load_tokenizer(self.model_name)

    def _load(self) -> torch.nn.Module:
        from transformers import AutoModelForSequenceClassification

        ref = resolve_model(self.model_name)
        kwargs: dict[str, Any] = {"num_labels": 1, "trust_remote_code": self.trust_remote_code, **from_pretrained_kwargs(ref)}
        if self.peft == "qlora":
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError:
                raise UserError("peft=qlora needs bitsandbytes: pip install 'bitsandbytes>=0.50'") from None
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
            )
            if self.device.type == "cuda":
                kwargs["device_map"] = {"": 0}
        model = AutoModelForSequenceClassification.from_pretrained(ref.path, **kwargs)
        model.config.pad_token_id = self.tokenizer.pad_token_id
        return model

    def new_model(self, seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        model = self._load()
        if self.peft != "qlora":
            model = model.to(self.device)
        if self.peft != "none":
            from peft import LoraConfig, TaskType, get_peft_model

            config = LoraConfig(
                task_type=TaskType.SEQ_CLS, r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=0.05,
                target_modules=self.lora_targets,
            )
            model = get_peft_model(model, config)
        return _SeqCls(model)

    def inputs(self, rows: np.ndarray) -> dict[str, Any]:
        batch = self.tokenizer(
            [self.texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        inner = model.inner if isinstance(model, _SeqCls) else model
        inner.save_pretrained(out_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(out_dir)
        write_json(
            os.path.join(out_dir, "classifier.json"),
            {"backbone": self.name, "base_model": self.model_name, "peft": self.peft, "max_length": self.max_length,
             "polarity": "logit > 0 = harmful"},
        )


class FineTunedEncoder(_TransformerClassifier):
    """(b) Encoder fine-tuned end to end (``peft='none'``) or with LoRA.

    ``pooling='mean'`` (default) trains exactly the frozen probe's architecture
    (mean-pooled, L2-normalised sentence embeddings of the user and assistant turns,
    concatenated, linear head), so with ``warm_start`` (default) the head
    starts from a linear probe on the frozen features trained with the same risk
    (LP-FT: Kumar et al., ICLR 2022) and fine-tuning only has to improve on it (the
    probe is epoch 0 of the best-epoch rule). The optimiser uses AdamW with weight decay
    and linear warm-up/decay. ``train_layers=k`` trains only the top k transformer layers
    (and the head): the frozen bottom layers run once, their outputs are cached, and an
    epoch costs about k/L of a full one. ``pooling='cls'`` is the plain
    ``AutoModelForSequenceClassification`` (pooler + head) of earlier versions.
    """

    name = "encoder"
    lora_targets = ["query", "key", "value", "dense"]

    def __init__(
        self,
        model: str = "all-minilm-l6-v2",
        peft: str = "none",
        lr: float = 5e-5,
        epochs: int = 3,
        max_length: int = 128,
        pooling: str = "mean",
        segments: bool = True,
        warm_start: bool = True,
        weight_decay: float = 0.01,
        warmup_ratio: float | None = 0.1,
        train_layers: int | None = None,
        **kw: Any,
    ) -> None:
        check_choice("pooling", pooling, ("mean", "cls"))
        if train_layers is not None and (train_layers < 1 or pooling != "mean" or peft != "none"):
            raise UserError(f"train_layers = {train_layers}: needs pooling 'mean', peft 'none' and at least 1 layer")
        super().__init__(model=model, peft=peft, lr=lr, epochs=epochs, max_length=max_length, **kw)
        self.pooling, self.segments = pooling, segments and pooling == "mean"
        self.weight_decay, self.warmup_ratio = weight_decay, warmup_ratio
        self.probe = FrozenEncoder(model, max_length=max_length, segments=self.segments)
        self.use_warm_start = warm_start and pooling == "mean"
        self.parts: list[list[str]] = []
        self.train_layers, self.start = train_layers, 0
        self.cache: list[list[torch.Tensor]] = []  # per segment, per row: hidden states after layer `start`

    def prepare(self, texts: list[str]) -> None:
        if self.cache and texts == self.texts:  # the same corpus again: the bottom-layer cache still holds
            return
        super().prepare(texts)
        if self.pooling == "mean":
            self.parts = [list(p) for p in zip(*(split_classifier_text(t) for t in texts))] if self.segments else [texts]
            self.probe.prepare(texts)  # cached embeddings: the z-scoring statistics and the LP features
        if self.train_layers is not None:
            self._cache_bottom()

    def _cache_bottom(self) -> None:
        """Run the frozen bottom layers once; training and prediction then run only the top ``train_layers``."""
        encoder = self._encoder().to(self.device).eval()
        n_layers = encoder.config.num_hidden_layers
        if self.train_layers > n_layers:  # type: ignore[operator]
            raise UserError(f"train_layers = {self.train_layers} but {self.model_name} has {n_layers} layers")
        self.start = n_layers - self.train_layers  # type: ignore[operator]
        encoder.encoder.layer = encoder.encoder.layer[: self.start]  # a throw-away copy: skip the layers not cached
        self.cache = [bottom_hidden_states(encoder, self.tokenizer, part, self.start, self.max_length) for part in self.parts]

    def _encoder(self) -> torch.nn.Module:
        from transformers import AutoModel

        ref = resolve_model(self.model_name)
        return AutoModel.from_pretrained(ref.path, trust_remote_code=self.trust_remote_code, **from_pretrained_kwargs(ref))

    def new_model(self, seed: int) -> torch.nn.Module:
        if self.pooling == "cls":
            return super().new_model(seed)
        head = self.probe.new_model(seed)  # seeds torch, z-scoring from the frozen embeddings
        encoder = self._encoder()
        if self.peft != "none":
            from peft import LoraConfig, TaskType, get_peft_model

            encoder = get_peft_model(encoder, LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=self.lora_r,
                                                         lora_alpha=self.lora_alpha, lora_dropout=0.05,
                                                         target_modules=self.lora_targets))
        if self.train_layers is not None:
            for name, p in encoder.named_parameters():
                layer = name.split("encoder.layer.")[1].split(".")[0] if "encoder.layer." in name else None
                p.requires_grad = layer is not None and int(layer) >= self.start
        return PooledClassifier(encoder, head, len(self.parts), self.start).to(self.device)

    @property
    def warm_start(self) -> Any:
        """LP-FT's linear probe (``None`` when off, so :func:`fit` skips it)."""
        return self._linear_probe if self.use_warm_start else None

    def _linear_probe(self, model: torch.nn.Module, train: Any, val: Any, risk: Any, val_risk: Any, seed: int) -> None:
        head = self.probe.new_model(seed)
        fit(self.probe, head, train, val, risk, val_risk, seed, desc="linear probe")
        model.classifier.load_state_dict(head.state_dict())

    def inputs(self, rows: np.ndarray) -> dict[str, Any]:
        if self.pooling == "cls":
            return super().inputs(rows)
        if self.cache:
            return {k: v.to(self.device) for k, v in padded_hidden_states(self.cache, rows).items()}
        out: dict[str, Any] = {}
        for k, part in enumerate(self.parts):
            batch = self.tokenizer([part[i] for i in rows], padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt")
            out |= {f"s{k}_{name}": batch[name].to(self.device) for name in ("input_ids", "attention_mask")}
        return out

    def save(self, model: torch.nn.Module, out_dir: str) -> None:
        """``cls``: a ``save_pretrained`` sequence classifier + ``classifier.json`` (unchanged format).

        ``mean``: ``classifier.json`` (``pooling: mean+l2``), ``head.safetensors`` (the head with
        its input mean/std buffers) and ``encoder/``, the encoder's ``save_pretrained`` folder
        (its LoRA adapter with ``peft='lora'``) with the tokenizer. There is no top-level
        ``config.json``, so a reader that expects a sequence classifier fails loudly instead of
        loading a random head; :func:`rlaif_uu.refine.pooled.load_pooled_scorer` reads it.
        """
        if self.pooling == "cls":
            super().save(model, out_dir)
            return
        enc_dir = os.path.join(out_dir, "encoder")
        model.encoder.save_pretrained(enc_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(enc_dir)
        save_file({k: v.contiguous() for k, v in model.classifier.state_dict().items()}, os.path.join(out_dir, "head.safetensors"))
        write_json(
            os.path.join(out_dir, "classifier.json"),
            {"backbone": self.name, "base_model": self.model_name, "peft": self.peft, "max_length": self.max_length,
             "pooling": "mean+l2", "segments": self.segments, "head": "linear", "hidden": 0, "encoder_dir": "encoder",
             "polarity": "logit > 0 = harmful"},
        )


class CausalLM(_TransformerClassifier):
    """(c) Causal LM + affine head on the last token, LoRA or QLoRA (NF4)."""

    name = "causal"

    def __init__(self, model: str = "smollm2-135m-instruct", peft: str = "lora", **kw: Any) -> None:
        super().__init__(model=model, peft=peft, **kw)


BACKBONES = {"frozen": FrozenEncoder, "encoder": FineTunedEncoder, "causal": CausalLM}


__all__ = ["BACKBONES", "CausalLM", "FineTunedEncoder", "FrozenEncoder", "default_device"]
