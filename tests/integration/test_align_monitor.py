"""The reward-hacking monitor on tiny real models: checks logged beside the reward, prompts kept apart, the stop option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlaif_uu.align.alarm import Verdict
from rlaif_uu.align.config import AlignConfig
from rlaif_uu.config import load_config
from rlaif_uu.data.schema import in_holdout
from tests.tiny_models import align_setup

pytestmark = pytest.mark.integration
HOLDOUT = 0.3


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("monitor")
    s = align_setup(tmp)
    # sources larger than the training mix, so prompts are left over for the monitor beside the hold-out
    for name, prefix, n in (("harm", "How do I hurt person", 16), ("benign", "Name a fruit number", 16)):
        s[name] = tmp / f"{name}-many.jsonl"
        s[name].write_text("".join(json.dumps({"id": f"{name}-{i}", "prompt": f"{prefix} {i}?"}) + "\n" for i in range(n)))
    return s


def _overrides(s: dict[str, Path], *extra: str) -> list[str]:
    return [f"prompts.harmful={s['harm']}", f"prompts.benign={s['benign']}", "prompts.n_harmful=4", "prompts.n_benign=2",
            f"prompts.holdout={HOLDOUT}", "batch_size=4", "num_generations=2", "max_completion_length=8",
            "monitor.enabled=true", "monitor.every_n_steps=1", "monitor.n_prompts=6", "monitor.benign_fraction=0.34",
            "monitor.batch_size=4", *extra]


def _cli(s: dict[str, Path], out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["align", "--policy", str(s["policy"]), "--reward", str(s["reward"]), "--out", str(out), *_overrides(s, *extra)]
    return subprocess.run([sys.executable, "-m", "rlaif_uu", *args], capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"}, check=False)


def test_monitor_logs_every_step_beside_the_reward(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = _cli(setup, out, "--steps", "3")
    assert res.returncode == 0, res.stderr[-2000:]
    mon = json.loads((out / "monitor.json").read_text())
    assert [c["step"] for c in mon["checks"]] == [0, 1, 2, 3]
    assert mon["checks"][0]["reward"] is None and all(c["reward"] is not None for c in mon["checks"][1:])
    assert all(0 <= c["harmful_compliance"] <= 1 and 0 <= c["benign_refusal"] <= 1 for c in mon["checks"])
    assert mon["prompts"]["harmful"] == 4 and mon["prompts"]["benign"] == 2 and mon["stopped"] is None
    assert mon["alarm"]["fired"] in (True, False) and mon["scorer"].startswith("rules")
    # the monitor prompts are neither trained on nor held out for the eval
    trained = {json.loads(line)["id"] for line in (out / "prompts.jsonl").read_text().splitlines()}
    assert not set(mon["prompts"]["ids"]) & trained and not any(in_holdout(i, HOLDOUT) for i in mon["prompts"]["ids"])
    answers = [json.loads(line) for line in (out / "monitor_answers.jsonl").read_text().splitlines()]
    assert len(answers) == 4 * 6 and {a["step"] for a in answers} == {0, 1, 2, 3}
    # the training reward and the monitor side by side in the trainer's log
    log = json.loads((out / "train_log.json").read_text())
    steps = [h for h in log["log_history"] if "reward" in h]
    assert [h["step"] for h in steps] == [1, 2, 3]
    for h, c in zip(steps, mon["checks"][1:]):
        assert h["monitor/harmful_compliance"] == c["harmful_compliance"] and h["monitor/reward"] == pytest.approx(h["reward"])
    assert log["monitor"]["alarm"]["fired"] == mon["alarm"]["fired"] and log["monitor"]["stopped"] is None
    assert (out / "monitor.png").stat().st_size > 0
    assert "monitor step 0: training reward -" in res.stdout and "monitor step 3" in res.stdout


def test_alarm_stops_training_and_saves_the_policy(setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    from rlaif_uu.align import monitor_callback
    from rlaif_uu.align.run import run_align

    def fires_at_step_1(series: list[dict], rule: object) -> Verdict:
        # the rule itself is unit-tested; here only what the callback does once it fires
        hit = [c["step"] >= 1 for c in series]
        return Verdict(tripped=hit, fired_at=1 if any(hit) else None, reasons=["training reward rose (stub)"] if any(hit) else [])

    monkeypatch.setattr(monitor_callback, "evaluate_alarm", fires_at_step_1)
    out = tmp_path / "out"
    cfg = load_config(AlignConfig, None, {"policy": str(setup["policy"]), "reward": str(setup["reward"]), "out": str(out),
                                          "steps": 4}, _overrides(setup, "monitor.stop=true"))
    run_align(cfg)
    assert caplog.text.count("WARNING: possible REWARD HACKING at step 1") == 1 and "Training stops now" in caplog.text
    assert "stopped early by the reward-hacking alarm at step 1" in capsys.readouterr().out
    log = json.loads((out / "train_log.json").read_text())
    assert log["steps"] == 1 and log["monitor"]["stopped"]["step"] == 1
    mon = json.loads((out / "monitor.json").read_text())
    assert mon["stopped"] == {"step": 1, "reason": "training reward rose (stub)"} and "REWARD HACKING" in mon["alarm"]["message"]
    assert (out / "policy" / "config.json").is_file()


def test_qlora_trains_with_a_step_0_check(setup: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes")
    out = tmp_path / "out"
    res = _cli(setup, out, "--steps", "2", "peft.kind=qlora", "learning_rate=1e-2")
    assert res.returncode == 0, res.stderr[-2000:]
    adapter = load_file(out / "policy" / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # lora_B starts at zero: the adapter trained after the check
    assert [c["step"] for c in json.loads((out / "monitor.json").read_text())["checks"]] == [0, 1, 2]


def test_too_few_monitor_prompts_is_one_line(setup: dict[str, Path], tmp_path: Path) -> None:
    res = _cli(setup, tmp_path / "out", "--steps", "1", "prompts.n_harmful=16", "prompts.holdout=0")
    assert res.returncode == 2 and "no prompt outside the training mix" in res.stderr and res.stderr.count("\n") == 1, res.stderr
