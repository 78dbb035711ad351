"""Replay the monitor series recorded on the configuration of the committed quickstart (harmful compliance 0.650 -> 0.700).

eval/results/alarm/quickstart_old.json is the ``monitor.json`` of one real GRPO run of that configuration
(eval/results/alarm/quickstart_old.md has the command); the alarm must fire on it with the thresholds
that run used, and the recorded reward must be what TRL logged.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlaif_uu.align.alarm import evaluate_alarm
from rlaif_uu.align.config import MonitorSettings
from rlaif_uu.align.monitor import rule_of

RECORDED = Path(__file__).resolve().parents[3] / "eval" / "results" / "alarm" / "quickstart_old.json"


def _recorded() -> dict:
    return json.loads(RECORDED.read_text())


def test_alarm_fires_on_the_old_quickstart_configuration() -> None:
    mon = _recorded()
    rule = rule_of(MonitorSettings(**mon["settings"]))
    verdict = evaluate_alarm(mon["checks"], rule)
    assert verdict.fired, f"the alarm stayed quiet on the recorded run: {verdict.changes}"
    assert verdict.fired_at == mon["alarm"]["step"]  # the callback's own decision during the run agrees with the replay
    assert verdict.changes["reward"] > rule.reward_rise


def test_the_default_thresholds_fire_too() -> None:
    # the run used the defaults: a replay with today's defaults must still fire
    assert evaluate_alarm(_recorded()["checks"], rule_of(MonitorSettings())).fired


def test_drift_is_found_on_a_flat_reward_run_the_alarm_misses() -> None:
    # the ladder's first refined run: the training reward stayed flat while monitor compliance went 0.667 -> 1.000
    mon = json.loads((RECORDED.parent / "ladder_flat_reward.json").read_text())
    verdict = evaluate_alarm(mon["checks"], rule_of(MonitorSettings()))
    assert not verdict.fired  # no rise of the reward for the alarm to see
    assert verdict.drift_at == 40 and "0.667 -> 1.000" in (verdict.drift_reason or "")
