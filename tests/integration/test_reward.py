"""Reward export, SafetyReward and the polarity through TRL, on tiny real models."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rlaif_uu.data.schema import classifier_text
from rlaif_uu.errors import UserError
from rlaif_uu.reward import SafetyReward, load_reward_metadata
from rlaif_uu.reward.classifier import load_harm_scorer
from rlaif_uu.reward.export import export_reward
from tests.conftest import make_rows, write_jsonl
from tests.tiny_models import (
    COMPLY,
    HARMFUL_PROMPTS,
    REFUSE,
    tiny_bert,
    tiny_llama,
    toy_pairs,
    train_classifier,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="module")
def encoder_reward(bert: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("enc")
    cls = train_classifier(bert, tmp / "classifier")
    return cls, export_reward(cls, tmp / "reward")


def _toy_texts() -> list[str]:
    prompts, responses, _ = toy_pairs()
    return [classifier_text(p, r) for p, r in zip(prompts, responses)]


def _same_tokens_as_training(reward: SafetyReward) -> bool:
    """The chat-template path (no special tokens added) gives the token ids the classifier was trained on."""
    prompts, responses, _ = toy_pairs()
    tok = reward.tokenizer
    via_template = tok(reward.texts(prompts, responses), add_special_tokens=False)["input_ids"]
    return via_template == tok(_toy_texts())["input_ids"]


def test_encoder_export_is_the_negated_classifier(encoder_reward: tuple[Path, Path]) -> None:
    from transformers import AutoModelForSequenceClassification

    cls, out = encoder_reward
    model = AutoModelForSequenceClassification.from_pretrained(out)  # stock class, no trust_remote_code
    assert model.config.num_labels == 1
    harm = load_harm_scorer(cls)(_toy_texts())
    prompts, responses, labels = toy_pairs()
    reward = SafetyReward(out)
    assert _same_tokens_as_training(reward)
    safety = reward.logits(prompts, responses)
    np.testing.assert_allclose(safety, -harm, atol=1e-5)
    assert all(safety[i] > safety[i - 1] for i in range(1, len(labels), 2))  # each refusal above its compliance
    meta = load_reward_metadata(out)
    assert meta["polarity"] == "higher_is_safer" and not meta["source"]["distilled"]
    card = (out / "README.md").read_text()
    assert card.count("higher = safer") == 1
    front = card.split("---")[1]  # the HF metadata block: a local base model has no hub id and no known license
    assert "license: other" in front and "base_model" not in front and "tags: [reward-model" in front


def test_causal_lora_export_merges_adapter(tmp_path: Path) -> None:
    base = tiny_llama(tmp_path / "tiny-llama")
    cls = train_classifier(base, tmp_path / "classifier", peft="lora", steps=20)
    assert (cls / "adapter_config.json").is_file()
    out = export_reward(cls, tmp_path / "reward")
    assert not (out / "adapter_config.json").exists()
    prompts, responses, _ = toy_pairs()
    reward = SafetyReward(out)
    assert _same_tokens_as_training(reward)
    np.testing.assert_allclose(reward.logits(prompts, responses), -load_harm_scorer(cls)(_toy_texts()), atol=1e-4)


def test_frozen_head_is_distilled_with_fidelity(bert: Path, tmp_path: Path) -> None:
    from rlaif_uu.refine.backbones import FrozenEncoder

    rows = make_rows(60)
    texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
    y = torch.tensor([1.0 if r["gold_label"] == "harmful" else 0.0 for r in rows])
    frozen = FrozenEncoder(model=str(bert), segments=True)
    frozen.prepare(texts)
    head = frozen.new_model(0)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(100):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(frozen.embeddings), y)
        loss.backward(), opt.step(), opt.zero_grad()
    run = tmp_path / "refine"
    frozen.save(head, str(run / "classifier"))
    write_jsonl(run / "refined.jsonl", rows)
    out = export_reward(run, tmp_path / "reward", distill_epochs=8, distill_lr=2e-3)
    meta = load_reward_metadata(out)
    fidelity = meta["source"]["fidelity"]
    assert meta["source"]["distilled"] and fidelity["held_out_rows"] == 18 and fidelity["swapped_answers_per_row"] == 2  # 60 rows + 2 swaps each
    safety = SafetyReward(out).logits([r["prompt"] for r in rows], [r["response"] for r in rows])
    teacher = -load_harm_scorer(run)(texts)
    assert np.corrcoef(safety, teacher)[0, 1] > 0.9
    assert meta["calibration"]["n_gold"] == 60 and meta["calibration"]["accuracy"] > 0.9


def test_trl_reads_the_same_scores_and_polarity(encoder_reward: tuple[Path, Path], tmp_path: Path) -> None:
    """GRPOTrainer loads the folder from its path; its reward path equals SafetyReward and prefers refusals."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    _, out = encoder_reward
    policy = tiny_llama(tmp_path / "policy")
    prompts = [[{"role": "user", "content": p}] for p in HARMFUL_PROMPTS]
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), use_cpu=True, bf16=False, per_device_train_batch_size=4,
                      num_generations=2, max_completion_length=8, report_to="none")
    trainer = GRPOTrainer(model=str(policy), reward_funcs=str(out), args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]))
    pairs = [(p, [{"role": "assistant", "content": c}]) for p in prompts for c in (COMPLY, REFUSE)]
    ps, cs = [p for p, _ in pairs], [c for _, c in pairs]
    trl_scores = trainer._calculate_rewards([{"prompt": p} for p in ps], ps, cs, [[0]] * len(ps))[:, 0].numpy()
    np.testing.assert_allclose(trl_scores, SafetyReward(out).logits(ps, cs), atol=1e-4)
    assert (trl_scores[1::2] > trl_scores[0::2]).all()


def test_safety_reward_outputs_and_extra_terms(encoder_reward: tuple[Path, Path]) -> None:
    _, out = encoder_reward
    prompts, responses = [HARMFUL_PROMPTS[0], "Suggest a name for my cat."], [REFUSE, REFUSE]
    reward = SafetyReward(out, output="logodds")
    z = reward.logits(prompts, responses) / reward.temperature
    np.testing.assert_allclose(reward(prompts, responses), z, atol=1e-6)
    prob = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(SafetyReward(out)(prompts, responses), prob, atol=1e-6)
    np.testing.assert_allclose(SafetyReward(out, output="centered")(prompts, responses), 2 * prob - 1, atol=1e-6)
    penalised = SafetyReward(out, benign_prompts=["Suggest a name for my cat."], benign_refusal_penalty=0.5)
    np.testing.assert_allclose(penalised(prompts, responses), prob - [0.0, 0.5], atol=1e-6)
    long = ["word " * 150, "word " * 10]
    lengthy = SafetyReward(out, length_penalty=0.2, length_free_words=100)(prompts, long)
    np.testing.assert_allclose(lengthy, np.array(SafetyReward(out)(prompts, long)) - [0.1, 0.0], atol=1e-6)
    band = SafetyReward(out, abstain_band=0.5)(prompts, responses)  # |p - 0.5| < 0.5 always: all abstain
    assert band == [None, None]


def test_reward_folder_checks(encoder_reward: tuple[Path, Path], tmp_path: Path) -> None:
    _, out = encoder_reward
    two = tmp_path / "two"
    shutil.copytree(out, two)
    cfg = json.loads((two / "config.json").read_text())
    cfg["id2label"] = {"0": "SAFE", "1": "UNSAFE"}
    (two / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError, match="2 labels"):
        SafetyReward(two)
    bare = tmp_path / "bare"
    shutil.copytree(out, bare)
    (bare / "rlaif_uu_reward.json").unlink()
    with pytest.raises(UserError, match="polarity"):
        load_reward_metadata(bare)
    with pytest.raises(UserError, match="not empty"):
        export_reward(encoder_reward[0], out)


def test_cli_export_and_bad_source(encoder_reward: tuple[Path, Path], tmp_path: Path) -> None:
    cls, _ = encoder_reward
    run = [sys.executable, "-m", "rlaif_uu", "reward", "export"]
    ok = subprocess.run(run + ["--from", str(cls), "--out", str(tmp_path / "r")], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "higher = safer" in ok.stdout and (tmp_path / "r" / "rlaif_uu_reward.json").is_file()
    bad = subprocess.run(run + ["--from", str(tmp_path), "--out", str(tmp_path / "r2")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "not a refined classifier" in bad.stderr
    assert not (tmp_path / "r2").exists()


def test_qlora_classifier_export_matches_the_4bit_model(tmp_path: Path) -> None:
    """The adapter is merged into the dequantized NF4 base it was trained on: scores match the 4-bit classifier."""
    from rlaif_uu.refine.backbones import CausalLM
    from rlaif_uu.refine.train import predict

    texts, (prompts, responses, labels) = _toy_texts(), toy_pairs()
    backbone = CausalLM(model=str(tiny_llama(tmp_path / "tiny-llama")), peft="qlora", batch_size=8)
    backbone.prepare(texts)
    model = backbone.new_model(0)
    rows = np.arange(len(texts))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**backbone.inputs(rows)), torch.tensor(labels, dtype=torch.float32))
        loss.backward(), opt.step(), opt.zero_grad()
    harm = predict(backbone, model, rows)
    backbone.save(model, str(tmp_path / "classifier"))
    out = export_reward(tmp_path / "classifier", tmp_path / "reward")
    np.testing.assert_allclose(SafetyReward(out).logits(prompts, responses), -harm, atol=2e-3)


def test_mean_pooled_encoder_is_distilled(bert: Path, tmp_path: Path) -> None:
    from rlaif_uu.refine.backbones import FineTunedEncoder
    from rlaif_uu.refine.losses import pn_risk
    from rlaif_uu.refine.train import fit

    rows = make_rows(60)
    texts = [classifier_text(r["prompt"], r["response"]) for r in rows]
    harmful = np.array([i for i, r in enumerate(rows) if r["gold_label"] == "harmful"])
    safe = np.array([i for i, r in enumerate(rows) if r["gold_label"] == "safe"])
    backbone = FineTunedEncoder(model=str(bert), epochs=1, batch_size=8, lr=1e-2)
    backbone.prepare(texts)
    model = fit(backbone, backbone.new_model(0), (harmful[:24], safe[:24]), (harmful[24:], safe[24:]), pn_risk, pn_risk, 0).model
    run = tmp_path / "refine"
    backbone.save(model, str(run / "classifier"))
    write_jsonl(run / "refined.jsonl", rows)
    out = export_reward(run, tmp_path / "reward", distill_epochs=8, distill_lr=2e-3)
    assert load_reward_metadata(out)["source"]["distilled"]
    safety = SafetyReward(out).logits([r["prompt"] for r in rows], [r["response"] for r in rows])
    assert np.corrcoef(safety, -load_harm_scorer(run)(texts))[0, 1] > 0.9


def _damaged(src: Path, dst: Path, edit: str) -> Path:
    shutil.copytree(src, dst)
    if edit == "no-classifier-json":
        (dst / "classifier.json").unlink()
    elif edit == "truncated":
        weights = dst / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif edit == "bin-only":
        (dst / "model.safetensors").unlink()
        (dst / "pytorch_model.bin").write_bytes(b"pickled")
    elif edit == "corrupt-config":
        (dst / "config.json").write_text('{"architectures": [')
    elif edit == "corrupt-info":
        (dst / "classifier.json").write_text("{oops")
    return dst


@pytest.mark.parametrize("edit, match", [
    ("no-classifier-json", "classifier.json is missing"),
    ("truncated", "unreadable weights"),
    ("bin-only", "no model.safetensors .found pytorch_model.bin"),
    ("corrupt-info", "classifier.json: not valid JSON"),
])
def test_export_from_a_damaged_classifier_is_one_line(encoder_reward: tuple[Path, Path], tmp_path: Path, edit: str,
                                                      match: str) -> None:
    run = tmp_path / "refine"
    _damaged(encoder_reward[0], run / "classifier", edit)
    (run / "history.json").write_text("{}")
    with pytest.raises(UserError, match=match):
        export_reward(run, tmp_path / "reward")
    assert not (tmp_path / "reward").exists()


def test_export_of_a_frozen_head_without_its_weights(bert: Path, tmp_path: Path) -> None:
    from rlaif_uu.refine.backbones import FrozenEncoder

    frozen = FrozenEncoder(model=str(bert))
    frozen.prepare(["a", "b"])
    run = tmp_path / "refine"
    frozen.save(frozen.new_model(0), str(run / "classifier"))
    (run / "history.json").write_text("{}")
    (run / "classifier" / "head.safetensors").unlink()
    with pytest.raises(UserError, match=r"no head.safetensors"):
        export_reward(run, tmp_path / "reward")


@pytest.mark.parametrize("edit, match", [
    ("num_labels", "has 2 labels"),
    ("corrupt-config", "config.json: not valid JSON"),
    ("truncated", "unreadable weights"),
    ("bin-only", "pickled weights are not loaded"),
    ("temperature-0", "temperature 0"),
    ("temperature-text", "temperature 'hot'"),
])
def test_damaged_reward_folder_is_one_line(encoder_reward: tuple[Path, Path], tmp_path: Path, edit: str, match: str) -> None:
    folder = _damaged(encoder_reward[1], tmp_path / "reward", edit)
    if edit == "num_labels":
        cfg = json.loads((folder / "config.json").read_text())
        assert len(cfg["id2label"]) == 1
        (folder / "config.json").write_text(json.dumps(cfg | {"num_labels": 2}))
    if edit.startswith("temperature"):
        meta = json.loads((folder / "rlaif_uu_reward.json").read_text())
        (folder / "rlaif_uu_reward.json").write_text(json.dumps(meta | {"temperature": 0 if edit.endswith("0") else "hot"}))
    with pytest.raises(UserError, match=match) as info:
        SafetyReward(folder)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("judge_right", [True, False])
def test_export_warns_when_the_reward_is_below_the_judge_on_the_gold_rows(
        encoder_reward: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], judge_right: bool) -> None:
    """The toy classifier ranks refusals safe; with gold labels that say the opposite and a judge that
    agrees with gold, the reward is below the judge and the export says so; with the judge wrong, it is not."""
    from rlaif_uu.cli import main

    cls, _ = encoder_reward
    run = tmp_path / "refine"
    shutil.copytree(cls, run / "classifier")
    prompts, responses, labels = toy_pairs()
    gold = [1 - y for y in labels] if judge_right else labels  # the classifier learned `labels`
    judge = gold if judge_right else [1 - y for y in labels]
    write_jsonl(run / "refined.jsonl", [{"id": f"r{i}", "prompt": p, "response": r, "judge_label": j, "gold_label": g}
                                         for i, (p, r, j, g) in enumerate(zip(prompts, responses, judge, gold))])
    assert main(["reward", "export", "--from", str(run), "--out", str(tmp_path / "reward"), "pairwise.enabled=false"]) == 0
    cal = load_reward_metadata(tmp_path / "reward")["calibration"]
    assert cal["judge_accuracy"] == (1.0 if judge_right else 0.0)
    assert (cal["accuracy"] < cal["judge_accuracy"]) == judge_right
    assert ("warning: the reward's sign agrees with" in capsys.readouterr().out) == judge_right
