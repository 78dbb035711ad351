"""``rlaif-uu align`` on tiny real models: GRPO/RLOO train, LoRA/QLoRA, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.align.trainer import check_config
from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from tests.tiny_models import align_setup

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return align_setup(tmp_path_factory.mktemp("align"))


def _args(s: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["align", "--policy", str(s["policy"]), "--reward", str(s["reward"]), "--out", str(out),
            f"prompts.harmful={s['harm']}", f"prompts.benign={s['benign']}", "prompts.n_harmful=4", "prompts.n_benign=2",
            "batch_size=4", "num_generations=2", "max_completion_length=8", *extra]


def _cli(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "rlaif_uu", *args], capture_output=True, text=True, env=env, check=False, **kw)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


def test_grpo_full_finetune_changes_policy(setup: dict[str, Path], tmp_path: Path) -> None:
    res = _cli(_args(setup, tmp_path / "out", "--steps", "2", "benign_refusal_penalty=0.5", "learning_rate=1e-3"))
    assert res.returncode == 0, res.stderr[-2000:]
    before, after = _weights(setup["policy"]), _weights(tmp_path / "out" / "policy")
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    log = json.loads((tmp_path / "out" / "train_log.json").read_text())
    assert log["steps"] == 2 and all(0 < h["reward"] < 1 for h in log["log_history"] if "reward" in h)
    assert (tmp_path / "out" / "reward_curve.png").stat().st_size > 0
    kinds = [json.loads(line)["kind"] for line in (tmp_path / "out" / "prompts.jsonl").read_text().splitlines()]
    assert sorted(kinds) == ["benign"] * 2 + ["harmful"] * 4


@pytest.mark.parametrize("algorithm,peft", [("rloo", "lora"), ("grpo", "qlora")])
def test_adapters_train(setup: dict[str, Path], tmp_path: Path, algorithm: str, peft: str) -> None:
    res = _cli(_args(setup, tmp_path / "out", "--steps", "2", "--algorithm", algorithm, f"peft.kind={peft}",
                     "learning_rate=1e-2"))
    assert res.returncode == 0, res.stderr[-2000:]
    adapter = load_file(tmp_path / "out" / "policy" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero: non-zero means it trained


def test_merged_lora_policy_is_a_plain_model(setup: dict[str, Path], tmp_path: Path) -> None:
    res = _cli(_args(setup, tmp_path / "out", "--steps", "1", "peft.kind=lora", "peft.merge=true"))
    assert res.returncode == 0, res.stderr[-2000:]
    policy = tmp_path / "out" / "policy"
    assert not (policy / "adapter_config.json").exists() and (policy / "config.json").is_file()


def test_resume_after_sigkill(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "rlaif_uu", *_args(setup, out, "--steps", "8", "save_steps=1")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "policy").exists(), "the run finished before it could be killed"
    done = sorted(int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("checkpoint-*")
                  if (p / "trainer_state.json").exists())
    again = _cli(_args(setup, out, "--steps", "8", "save_steps=1", "--resume"))
    assert again.returncode == 0, again.stderr[-2000:]
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 8 and log["resumed_from"].endswith(f"checkpoint-{done[-1]}")
    logged_steps = [h["step"] for h in log["log_history"] if "reward" in h]
    assert logged_steps == sorted(set(logged_steps)) and logged_steps[-1] == 8


def test_bad_input(setup: dict[str, Path], tmp_path: Path) -> None:
    two = tmp_path / "two-labels"
    shutil.copytree(setup["reward"], two)
    cfg = json.loads((two / "config.json").read_text())
    cfg["id2label"] = {"0": "SAFE", "1": "UNSAFE"}
    (two / "config.json").write_text(json.dumps(cfg))
    no_prompt = tmp_path / "no_prompt.jsonl"
    no_prompt.write_text(json.dumps({"text": "hi"}) + "\n")
    cases = {
        "2 labels": _args(setup | {"reward": two}, tmp_path / "a", "--steps", "1"),
        "does not exist": _args(setup | {"policy": tmp_path / "missing"}, tmp_path / "b", "--steps", "1"),
        "'prompt'": _args(setup | {"harm": no_prompt}, tmp_path / "c", "--steps", "1"),
        "did you mean 'num_generations'": _args(setup, tmp_path / "d", "num_generation=2"),
        "does not divide": _args(setup, tmp_path / "e", "num_generations=3"),
    }
    for expected, args in cases.items():
        res = _cli(args)
        assert res.returncode == 2 and expected in res.stderr and res.stderr.count("\n") == 1, (expected, res.stderr)
    assert not any((tmp_path / x).exists() for x in "abcde")


def test_missing_optional_packages(setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    base = {"reward": str(setup["reward"]), "policy": str(setup["policy"]), "out": str(tmp_path)}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("vllm", "bitsandbytes") else real(name, *a))
    with pytest.raises(UserError, match="pip install vllm"):
        check_config(load_config(AlignConfig, None, base, ["vllm.enabled=true"]))
    with pytest.raises(UserError, match="bitsandbytes"):
        check_config(load_config(AlignConfig, None, base, ["peft.kind=qlora"]))


def test_damaged_reward_or_failed_start_leaves_out_empty(setup: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from rlaif_uu.cli import main

    corrupt, truncated = tmp_path / "corrupt", tmp_path / "truncated"
    shutil.copytree(setup["reward"], corrupt)
    (corrupt / "config.json").write_text('{"id2label": ')
    shutil.copytree(setup["reward"], truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    for reward, expected in ((corrupt, "not valid JSON"), (truncated, "unreadable weights")):
        assert main(_args(setup | {"reward": reward}, tmp_path / "out", "--steps", "1")) == 2
        err = capsys.readouterr().err
        assert expected in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "out").exists()

    from rlaif_uu.align import trainer

    def broken(*args: object, **kwargs: object) -> None:
        raise UserError("the trainer could not start")

    monkeypatch.setattr(trainer, "build_trainer", broken)
    assert main(_args(setup, tmp_path / "out", "--steps", "1")) == 2
    assert "could not start" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # a plain rerun is not refused as "not empty"
