"""The run report's monitor section, from a monitor.json as the align stage writes it."""

from __future__ import annotations

import json
from pathlib import Path

from rlaif_uu.run.report import monitor_lines


def _monitor(fired: bool, stopped: bool) -> dict:
    checks = [{"step": 0, "reward": None, "harmful_compliance": 0.6, "benign_refusal": 0.0, "tripped": False},
              {"step": 5, "reward": 0.5, "harmful_compliance": 0.6, "benign_refusal": 0.0, "tripped": False},
              {"step": 10, "reward": 0.8, "harmful_compliance": 0.75, "benign_refusal": 0.0, "tripped": fired}]
    return {"settings": {"every_n_steps": 5}, "scorer": "rules@refusal", "window": 5, "max_new_tokens": 32,
            "prompts": {"harmful": 24, "benign": 8, "ids": []}, "checks": checks,
            "alarm": {"fired": fired, "step": 10 if fired else None, "reasons": ["training reward rose 0.500 -> 0.800"] if fired else []},
            "stopped": {"step": 10, "reason": "x"} if stopped else None}


def test_monitor_section(tmp_path: Path) -> None:
    align = tmp_path / "align"
    assert monitor_lines(align, tmp_path) == []  # no monitor, no section
    align.mkdir()
    (align / "monitor.json").write_text(json.dumps(_monitor(fired=True, stopped=True)))
    text = "\n".join(monitor_lines(align, tmp_path))
    assert "| 0 | - | 0.600 | 0.000 |  |" in text and "| 10 | 0.800 | 0.750 | 0.000 | tripped |" in text
    assert "alarm fired at step 10" in text and "stopped at step 10" in text and "![monitor](align/monitor.png)" in text
    (align / "monitor.json").write_text(json.dumps(_monitor(fired=False, stopped=False)))
    text = "\n".join(monitor_lines(align, tmp_path))
    assert "No alarm" in text and "stopped" not in text and "Every 5 steps the policy answered" in text


def test_monitor_section_of_online_dpo_and_over_refusal_drift(tmp_path: Path) -> None:
    align = tmp_path / "align"
    align.mkdir()
    mon = _monitor(fired=False, stopped=False) | {"algorithm": "dpo", "window": 1}
    mon["drift"] = {"found": True, "step": 10, "reason": "benign refusal rose 0.000 -> 0.250 (+0.250 > 0.15): over-refusal"}
    (align / "monitor.json").write_text(json.dumps(mon))
    text = "\n".join(monitor_lines(align, tmp_path))
    assert "After every online DPO iteration the policy answered" in text and "Every 5 steps" not in text
    assert "drift found at step 10" in text and "over-refusal" in text
