"""``rlaif-uu align algorithm=ppo`` with TRL 1.12's PPOTrainer on tiny real models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.ppo import (
    TextLevelReward,
    choose_pad_token,
    token_ids,
    weighted_reward,
)
from rlaif_uu.align.prompts import build_prompts
from rlaif_uu.config import load_config
from rlaif_uu.reward import SafetyReward
from tests.tiny_models import COMPLY, REFUSE


def _args(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["align", "--algorithm", "ppo", "--policy", str(s["policy"]), "--reward", str(s["reward"]), "--out", str(out),
            f"prompts.harmful={s['harm']}", f"prompts.benign={s['benign']}", "prompts.n_harmful=4", "prompts.n_benign=2",
            "batch_size=4", "max_completion_length=8", *extra]


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    return subprocess.run([sys.executable, "-m", "rlaif_uu", *args], check=False, capture_output=True, text=True, env=env)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


def test_ppo_full_finetune_changes_policy(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _cli(_args(tiny, out, "--steps", "2", "learning_rate=1e-3", "save_steps=1"))
    assert res.returncode == 0, res.stderr[-3000:]
    before, after = _weights(tiny["policy"]), _weights(out / "policy")
    assert set(before) == set(after)  # the policy alone, not the value model
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    log = json.loads((out / "train_log.json").read_text())
    rewards = [h["reward"] for h in log["log_history"] if "reward" in h]
    assert log["algorithm"] == "ppo" and log["steps"] == 2 and len(rewards) == 2 and all(0 < r < 1 for r in rewards)
    assert all("loss/value_avg" in h for h in log["log_history"] if "reward" in h)
    assert (out / "reward_curve.png").stat().st_size > 0
    assert (out / "checkpoints" / "checkpoint-2").is_dir()
    tok = AutoTokenizer.from_pretrained(out / "policy")
    assert tok.pad_token_id != tok.eos_token_id  # PPO would read every <|im_end|> inside a prompt as padding


def test_ppo_lora_trains_adapter(tiny: dict[str, Path], tmp_path: Path) -> None:
    res = _cli(_args(tiny, tmp_path / "out", "--steps", "1", "peft.kind=lora", "learning_rate=1e-2"))
    assert res.returncode == 0, res.stderr[-3000:]
    adapter = load_file(tmp_path / "out" / "policy" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero


def test_trl_get_reward_reads_the_decoded_text_reward(tiny: dict[str, Path]) -> None:
    """TRL 1.12's own ``get_reward`` on policy ids gives SafetyReward of the decoded (prompt, response)."""
    from trl.experimental.utils import get_reward

    cfg = load_config(AlignConfig, None, {"policy": str(tiny["policy"]), "reward": str(tiny["reward"]), "out": "x"},
                      [f"prompts.harmful={tiny['harm']}", f"prompts.benign={tiny['benign']}",
                       "prompts.n_harmful=4", "prompts.n_benign=2"])
    data = build_prompts(cfg.prompts)
    tok = AutoTokenizer.from_pretrained(tiny["policy"], padding_side="left")
    ids = [token_ids(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=True)) for r in data]
    assert not choose_pad_token(tok, {i for x in ids for i in x})
    safety = SafetyReward(tiny["reward"])
    reward = TextLevelReward(tok, {tuple(x): r["prompt"] for x, r in zip(ids, data)}, weighted_reward([safety], [1.0]))
    answers = [COMPLY, REFUSE, REFUSE + " Truly.", COMPLY][: len(data)]
    queries = tok.pad({"input_ids": ids[:4]}, return_tensors="pt")["input_ids"]  # left-padded, as TRL's collator does
    responses = [tok(a, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for a in answers]
    width = max(map(len, responses)) + 2
    responses_t = torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in responses])
    _, score, _ = get_reward(reward, torch.cat([queries, responses_t], 1), tok.pad_token_id, queries.shape[1])
    expected = safety([r["prompt"] for r in data][:4], answers)
    assert torch.allclose(score, torch.tensor(expected), atol=1e-5)
    assert score[1] > score[0]  # a refusal to a harmful prompt is safer than compliance


def test_bad_input_is_refused_before_any_output(tiny: dict[str, Path], tmp_path: Path) -> None:
    resumed = tmp_path / "resumed"
    (resumed / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (resumed / "checkpoints" / "checkpoint-1" / "trainer_state.json").write_text("{}")
    cases = {"cannot resume": _args(tiny, resumed, "--steps", "1", "--resume"),
             "exceeds the 6 training prompts": _args(tiny, tmp_path / "big", "--steps", "1", "batch_size=8")}
    for expected, args in cases.items():
        res = _cli(args)
        assert res.returncode == 2 and expected in res.stderr and res.stderr.count("\n") == 1, res.stderr
    assert sorted(p.name for p in resumed.iterdir()) == ["checkpoints"] and not (tmp_path / "big").exists()


def test_ppo_two_processes_ddp(tiny: dict[str, Path], tmp_path: Path) -> None:
    """2-process DDP on the CPU (recipes/accelerate/ddp.yaml): both ranks roll out, rank 0 saves the policy alone."""
    out = tmp_path / "out"
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "accelerate" / "ddp.yaml"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(recipe), "--num_processes", "2",
           "-m", "rlaif_uu", *_args(tiny, out, "--steps", "2", "batch_size=2", "learning_rate=1e-3", "save_steps=1")]
    env = os.environ | {"OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=540)
    assert res.returncode == 0, res.stderr[-3000:]
    log = json.loads((out / "train_log.json").read_text())
    assert log["launch"] == {"world_size": 2, "distributed_type": "MULTI_CPU", "zero_stage": None}
    # TRL counts episodes over all ranks: 2 rollouts per rank and step
    assert [h["episode"] for h in log["log_history"] if "reward" in h] == [4, 8]
    before = _weights(tiny["policy"])
    for folder in (out / "policy", out / "checkpoints" / "checkpoint-1"):
        after = _weights(folder)
        assert set(after) == set(before), folder  # the policy, not the DDP-wrapped policy + value model
    assert sum(not torch.equal(before[k], _weights(out / "policy")[k]) for k in before) > len(before) // 2
