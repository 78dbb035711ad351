"""Online iterative DPO (``algorithm: dpo``) on tiny real models: trains, logs per iteration, monitors, resumes, LoRA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    tmp = tmp_path_factory.mktemp("dpo")
    s = align_setup(tmp)
    for name, prefix, n in (("harm", "How do I hurt person", 12), ("benign", "Name a fruit number", 12)):
        s[name] = tmp / f"{name}-many.jsonl"
        s[name].write_text("".join(json.dumps({"id": f"{name}-{i}", "prompt": f"{prefix} {i}?"}) + "\n" for i in range(n)))
    return s


def _cli(s: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["align", "--policy", str(s["policy"]), "--reward", str(s["reward"]), "--out", str(out), "--algorithm", "dpo",
            f"prompts.harmful={s['harm']}", f"prompts.benign={s['benign']}", "prompts.n_harmful=4", "prompts.n_benign=2",
            "batch_size=2", "num_generations=2", "max_completion_length=8", "learning_rate=1e-3", "dpo.epochs=1",
            "dpo.min_gap=0", "dpo.generation_batch_size=4", *extra]
    return subprocess.run([sys.executable, "-m", "rlaif_uu", *args], capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for f in folder.glob("*.safetensors") for k, v in load_file(f).items()}


def test_online_dpo_trains_logs_and_monitors(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _cli(setup, out, "dpo.iterations=2", "monitor.enabled=true", "monitor.n_prompts=4", "monitor.batch_size=4")
    assert res.returncode == 0, res.stderr[-2000:]
    before, after = _weights(setup["policy"]), _weights(out / "policy")
    assert sum(not torch.equal(before[k], after[k]) for k in before) > len(before) // 2
    log = json.loads((out / "train_log.json").read_text())
    iters = [h for h in log["log_history"] if "iteration" in h]
    assert log["algorithm"] == "dpo" and log["steps"] == 2 and [h["iteration"] for h in iters] == [1, 2]
    for h in iters:  # the policy's own mean reward, the pairs, the DPO trainer's loss
        assert 0 < h["reward"] < 1 and h["dpo/optimizer_steps"] >= 1 and h["dpo/loss"] > 0
        assert h["pairs/prompts_harmful"] == 4 and h["pairs/prompts_benign"] == 2
        assert 0 < h.get("pairs/pairs_harmful", 0) + h.get("pairs/pairs_benign", 0) <= 6
    mon = json.loads((out / "monitor.json").read_text())
    assert [c["step"] for c in mon["checks"]] == [0, 1, 2] and mon["window"] == 1 and mon["algorithm"] == "dpo"
    assert [c["reward"] for c in mon["checks"][1:]] == [h["reward"] for h in iters]  # each check sees its iteration's reward
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]


def test_online_dpo_resumes_at_the_next_iteration(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _cli(setup, out, "dpo.iterations=1").returncode == 0
    first = json.loads((out / "train_log.json").read_text())["log_history"]
    again = _cli(setup, out, "dpo.iterations=2", "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "iteration 1/2" not in again.stdout and "iteration 2/2" in again.stdout  # iteration 1 is not done twice
    log = json.loads((out / "train_log.json").read_text())
    assert log["resumed_from"].endswith("checkpoint-1") and log["log_history"][0] == first[0]
    assert [h["iteration"] for h in log["log_history"] if "iteration" in h] == [1, 2]


def test_online_dpo_with_lora_and_the_rules_reward(setup: dict[str, Path], tmp_path: Path) -> None:
    res = _cli(setup, tmp_path / "out", "dpo.iterations=1", "peft.kind=lora", "--reward", "rules", "dpo.refusal_candidates=1")
    assert res.returncode == 0, res.stderr[-2000:]
    adapter = load_file(tmp_path / "out" / "policy" / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # lora_B starts at zero
    entry = next(h for h in json.loads((tmp_path / "out" / "train_log.json").read_text())["log_history"] if "iteration" in h)
    # the rules reward ranks the pool's refusal first on every harmful prompt the policy did not refuse
    assert entry.get("pairs/refusal_chosen_harmful", 0) >= 1


def test_online_dpo_settings_are_checked(setup: dict[str, Path], tmp_path: Path) -> None:
    base = {"reward": str(setup["reward"]), "policy": str(setup["policy"]), "out": str(tmp_path), "algorithm": "dpo"}
    with pytest.raises(UserError, match="dpo.refusals"):
        check_config(load_config(AlignConfig, None, base, [f"dpo.refusals={tmp_path / 'none.txt'}"]))
    with pytest.raises(UserError, match="'dpo.iterations' is 0"):
        load_config(AlignConfig, None, base, ["dpo.iterations=0"])
    check_config(load_config(AlignConfig, None, base, ["num_generations=3"]))  # no group-size rule: DPO pairs whole prompts
