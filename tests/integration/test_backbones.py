"""Backbones (b) fine-tuned encoder and (c) causal LM + last-token head (LoRA, QLoRA) on tiny models.

Tiny models are built from a config with the real tokenizers of the offline
assets (MiniLM's WordPiece, SmolLM2's BPE), so loading code stays the real one.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from rlaif_uu.assets import resolve_model
from rlaif_uu.cli import main
from rlaif_uu.refine.backbones import CausalLM, FineTunedEncoder
from rlaif_uu.refine.loop import refine
from rlaif_uu.refine.losses import UUCoefficients, robust_uu_risk
from rlaif_uu.refine.priors import GoldSet, sample_gold
from rlaif_uu.refine.train import fit, predict

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(resolve_model("all-minilm-l6-v2").path)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> str:
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    ref = resolve_model("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(ref.path)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def _toy() -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = [f"User: how do I bake bread {i}\nAssistant: mix flour and water" for i in range(24)]
    texts += [f"User: how do I hurt someone {i}\nAssistant: hit them hard" for i in range(24)]
    y = np.array([0] * 24 + [1] * 24)
    noisy = y.copy()
    noisy[::6] = 1 - noisy[::6]
    return texts, y, noisy


def _trains(backbone) -> None:
    """A few robust-UU steps change the trainable parameters and keep the logits finite."""
    texts, y, noisy = _toy()
    backbone.prepare(texts)
    model = backbone.new_model(0)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert before, "no trainable parameters"
    k = UUCoefficients.from_priors(0.8, 0.2, 0.5)
    risk = partial(robust_uu_risk, k=k)
    rows = np.arange(len(texts))
    res = fit(backbone, model, (rows[noisy == 1], rows[noisy == 0]), (rows[:8][noisy[:8] == 1], rows[:8][noisy[:8] == 0]),
              risk, risk, seed=0)
    changed = [n for n, p in res.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])]
    assert changed, "training changed no parameter"
    g = predict(backbone, res.model, rows)
    assert g.shape == (48,) and np.isfinite(g).all()


def test_encoder_full_finetune_trains(tiny_bert: str) -> None:
    b = FineTunedEncoder(model=tiny_bert, peft="none", epochs=2, batch_size=8, lr=1e-3)
    _trains(b)
    assert all(p.requires_grad for p in b.new_model(0).parameters())


def test_encoder_lora_trains_only_adapters(tiny_bert: str) -> None:
    b = FineTunedEncoder(model=tiny_bert, peft="lora", epochs=2, batch_size=8, lr=1e-3)
    _trains(b)
    model = b.new_model(0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n or "classifier" in n for n in trainable)


@pytest.mark.parametrize("peft", ["lora", "qlora"])
def test_causal_lm_last_token_head_trains(tiny_llama: str, peft: str) -> None:
    b = CausalLM(model=tiny_llama, peft=peft, epochs=2, batch_size=8, lr=1e-3)
    _trains(b)
    model = b.new_model(0)
    n4 = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
    assert (n4 > 0) == (peft == "qlora")


def test_causal_qlora_refine_loop_end_to_end(tiny_llama: str) -> None:
    """Several QLoRA iterations in a row: the eval-forward trap of NF4 + LoRA must not bite."""
    texts, y, noisy = _toy()
    g = sample_gold(noisy, 16, 0)
    res = refine(texts, noisy, GoldSet.from_strata(g, y[g], noisy), CausalLM(model=tiny_llama, peft="qlora", epochs=2, batch_size=8, lr=1e-3),
                 iterations=2, flip_tol=0.0)
    assert len(res.history) == 3 and all(np.isfinite(s).all() for s in res.all_scores.values())


@pytest.mark.parametrize("kind, model_fixture, extra", [("encoder", "tiny_bert", ["backbone.peft=lora"]),
                                                       ("causal", "tiny_llama", ["backbone.peft=lora"])])
def test_cli_with_trainable_backbones(kind: str, model_fixture: str, extra: list[str], request: pytest.FixtureRequest,
                                      tmp_path: Path, corpus: Path, gold: Path) -> None:
    model = request.getfixturevalue(model_fixture)
    out = tmp_path / "out"
    code = main(["refine", "--input", str(corpus), "--gold", str(gold), "--out", str(out), "--backbone", kind,
                 "--model", model, "--iterations", "1", "backbone.epochs=1", "backbone.lr=1e-3", *extra])
    assert code == 0
    meta = json.loads((out / "classifier" / "classifier.json").read_text())
    assert meta["backbone"] == kind and meta["peft"] == "lora"
    adapter_dir = out / "classifier" / ("encoder" if kind == "encoder" else "")  # mean-pooled encoder: encoder/ subfolder
    assert (adapter_dir / "adapter_model.safetensors").exists()


def _rows_split(noisy: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rows = np.arange(len(noisy))
    val = rows % 6 == 1
    return (rows[~val & (noisy == 1)], rows[~val & (noisy == 0)]), (rows[val & (noisy == 1)], rows[val & (noisy == 0)])


def test_encoder_top_layers_from_cache_match_the_full_encoder(tiny_bert: str) -> None:
    texts, _, _ = _toy()
    full = FineTunedEncoder(model=tiny_bert, epochs=2, batch_size=8, lr=1e-3)
    top = FineTunedEncoder(model=tiny_bert, epochs=2, batch_size=8, lr=1e-3, train_layers=1)
    full.prepare(texts)
    top.prepare(texts)
    a, b = full.new_model(0), top.new_model(0)
    assert "s0_hidden" in top.inputs(np.arange(3)) and "s0_input_ids" in full.inputs(np.arange(3))
    rows = np.arange(len(texts))
    assert np.allclose(predict(full, a, rows), predict(top, b, rows), atol=1e-5)
    trainable = [n for n, p in b.named_parameters() if p.requires_grad]
    assert trainable and all(".layer.1." in n or n.startswith("classifier.") for n in trainable)
    assert any(".layer.0." in n for n, _ in b.named_parameters())  # the bottom layer is there, frozen
    _trains(top)


def test_encoder_linear_probe_warm_start_is_epoch_zero(tiny_bert: str) -> None:
    from rlaif_uu.refine.losses import pn_risk

    texts, _, noisy = _toy()
    b = FineTunedEncoder(model=tiny_bert, epochs=2, batch_size=8, lr=1e-3)
    b.prepare(texts)
    model = b.new_model(0)
    head0 = model.classifier.net.weight.detach().clone()
    res = fit(b, model, *_rows_split(noisy), pn_risk, pn_risk, seed=0)
    assert len(res.val_loss) == 3 and res.best_val_loss == min(res.val_loss)  # epoch 0 = the linear probe
    assert not torch.equal(head0, res.model.classifier.net.weight)
    cold = FineTunedEncoder(model=tiny_bert, epochs=2, batch_size=8, lr=1e-3, warm_start=False)
    cold.prepare(texts)
    assert len(fit(cold, cold.new_model(0), *_rows_split(noisy), pn_risk, pn_risk, seed=0).val_loss) == 2


@pytest.mark.parametrize("peft", ["none", "lora"])
def test_encoder_save_reloads_to_the_same_logits(tiny_bert: str, tmp_path: Path, peft: str) -> None:
    from transformers import AutoModelForSequenceClassification

    from rlaif_uu.refine.losses import pn_risk
    from rlaif_uu.refine.pooled import load_pooled_scorer

    texts, _, noisy = _toy()
    b = FineTunedEncoder(model=tiny_bert, peft=peft, epochs=1, batch_size=8, lr=1e-2)
    b.prepare(texts)
    model = fit(b, b.new_model(0), *_rows_split(noisy), pn_risk, pn_risk, seed=0).model  # trained weights, not the base
    b.save(model, str(tmp_path / "mean"))
    meta = json.loads((tmp_path / "mean" / "classifier.json").read_text())
    assert meta["pooling"] == "mean+l2" and meta["segments"] is True and meta["backbone"] == "encoder"
    with pytest.raises((OSError, ValueError)):  # no top-level config.json: a sequence-classifier reader cannot load a random head
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "mean")
    assert np.allclose(predict(b, model, np.arange(len(texts))), load_pooled_scorer(tmp_path / "mean")(texts), atol=1e-4)
    if peft == "none":
        cls = FineTunedEncoder(model=tiny_bert, pooling="cls", epochs=1, batch_size=8)  # the earlier format still writes
        cls.prepare(texts)
        cls.save(cls.new_model(0), str(tmp_path / "cls"))
        assert "pooling" not in json.loads((tmp_path / "cls" / "classifier.json").read_text())
        assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "cls").config.num_labels == 1


def test_encoder_rejects_bad_settings() -> None:
    from rlaif_uu.errors import UserError

    with pytest.raises(UserError, match="pooling 'max'"):
        FineTunedEncoder(pooling="max")
    with pytest.raises(UserError, match="train_layers = 2: needs"):
        FineTunedEncoder(train_layers=2, peft="lora")
