"""``accelerate launch --num_processes 2 -m rlaif_uu align`` on the CPU: DDP, DeepSpeed ZeRO-2 and ZeRO-3 (GRPO)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from rlaif_uu.align.ppo import token_ids

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "accelerate"


def _launch(config: str, tiny: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(RECIPES / config),
           "--num_processes", "2", "-m", "rlaif_uu", "align", "--policy", str(tiny["policy"]),
           "--reward", str(tiny["reward"]), "--out", str(out), f"prompts.harmful={tiny['harm']}",
           f"prompts.benign={tiny['benign']}", "prompts.n_harmful=4", "prompts.n_benign=2", "batch_size=4",
           "num_generations=2", "max_completion_length=8", "--steps", "2", "learning_rate=1e-3", *extra]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=540)


def _longest_prompt(tiny: dict[str, Path]) -> int:
    tok = AutoTokenizer.from_pretrained(tiny["policy"])
    prompts = [json.loads(line)["prompt"] for f in ("harm", "benign") for line in tiny[f].read_text().splitlines()]
    return max(len(token_ids(tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                     tokenize=True))) for p in prompts)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


@pytest.mark.parametrize("config,kind,stage", [("ddp.yaml", "MULTI_CPU", None), ("zero2.yaml", "DEEPSPEED", 2),
                                               ("zero3.yaml", "DEEPSPEED", 3)])
def test_two_processes_train_the_policy(tiny: dict[str, Path], tmp_path: Path, config: str, kind: str,
                                        stage: int | None) -> None:
    out = tmp_path / "out"
    res = _launch(config, tiny, out)
    assert res.returncode == 0, res.stderr[-4000:]
    log = json.loads((out / "train_log.json").read_text())
    # the world size comes from the live process group: 2 only if rank 1 joined it
    assert log["launch"] == {"world_size": 2, "distributed_type": kind, "zero_stage": stage}
    assert log["steps"] == 2
    # GRPO sums the tokens of step 1 over ranks: more than one rank's 4 rollouts could ever hold
    first = next(h for h in log["log_history"] if "num_tokens" in h)
    assert first["num_tokens"] > 4 * (_longest_prompt(tiny) + 8)
    before, after = _weights(tiny["policy"]), _weights(out / "policy")
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}  # ZeRO-3: gathered, not shards
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "checkpoints", "config.yaml", "policy", "prompts.jsonl", "reward_curve.png", "train_log.json"]
