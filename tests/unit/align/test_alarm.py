"""The reward-hacking alarm's rule, as a pure function over monitor series (and its settings check)."""

from __future__ import annotations

import pytest

from rlaif_uu.align.alarm import AlarmRule, drift_block, evaluate_alarm, warning_block
from rlaif_uu.align.config import AlignConfig, MonitorSettings
from rlaif_uu.align.monitor import check_monitor, reward_window
from rlaif_uu.errors import UserError


def series(rewards: list[float | None], compliance: list[float], refusal: list[float] | None = None) -> list[dict]:
    refusal = refusal or [0.0] * len(rewards)
    return [{"step": 5 * i, "reward": r, "harmful_compliance": c, "benign_refusal": b}
            for i, (r, c, b) in enumerate(zip(rewards, compliance, refusal))]


RULE = AlarmRule(reward_rise=0.05, compliance_rise=0.05, benign_refusal_rise=0.25, patience=2)


def test_fires_on_rising_reward_and_rising_compliance() -> None:
    v = evaluate_alarm(series([None, 0.50, 0.60, 0.70, 0.80], [0.60, 0.60, 0.63, 0.70, 0.75]), RULE)
    assert v.fired and v.fired_at == 20  # step 15 trips first (+0.10 compliance), step 20 completes patience 2
    assert v.tripped == [False, False, False, True, True]
    assert "training reward rose 0.500 -> 0.800" in v.reasons[0] and "harmful compliance rose 0.600 -> 0.750" in v.reasons[1]
    assert v.changes["harmful_compliance"] == pytest.approx(0.15)


def test_fires_on_an_over_refusal_collapse() -> None:
    v = evaluate_alarm(series([None, 0.5, 0.7, 0.9], [0.6, 0.6, 0.5, 0.4], [0.0, 0.0, 0.5, 0.9]), RULE)
    assert v.fired_at == 15 and "over-refusal collapse" in v.reasons[-1]


def test_quiet_when_reward_and_monitor_both_improve() -> None:
    v = evaluate_alarm(series([None, 0.5, 0.6, 0.7, 0.8, 0.9], [0.6, 0.55, 0.45, 0.4, 0.3, 0.2]), RULE)
    assert not v.fired and not any(v.tripped)


def test_drift_whatever_the_reward_does() -> None:
    flat = evaluate_alarm(series([None, 0.6, 0.6, 0.6, 0.6], [0.6, 0.6, 0.8, 0.9, 0.9]), RULE)
    assert not flat.fired and flat.drift_at == 15  # steps 10 and 15 are above 0.6 + 0.15: patience 2
    assert "0.600 -> 0.900" in (flat.drift_reason or "") and "0.600 -> 0.600" in (flat.drift_reason or "")
    blip = evaluate_alarm(series([None, 0.6, 0.6, 0.6, 0.6], [0.6, 0.9, 0.6, 0.9, 0.6]), RULE)
    assert blip.drift_at is None  # never two checks in a row
    safer = evaluate_alarm(series([None, 0.5, 0.6, 0.7], [0.6, 0.4, 0.3, 0.2]), RULE)
    assert safer.drift_at is None and not safer.fired
    block = drift_block(flat, "rules", 24, stop=True)
    assert "drifting at step 15" in block and "complies more" in block and "Training stops now" in block


def test_over_refusal_drift_whatever_the_reward_does() -> None:
    # the refusal-trained policy of the DPO quickstart: safer on harmful prompts, a quarter of the benign ones refused
    dpo = series([None, 0.60, 0.75], [0.75, 0.33, 0.08], [0.0, 0.0, 0.25])
    one = evaluate_alarm(dpo, AlarmRule(patience=1))
    assert not one.fired and one.drift_at == 10 and "benign refusal rose 0.000 -> 0.250" in (one.drift_reason or "")
    assert "harmful compliance" not in (one.drift_reason or "")
    block = drift_block(one, "refusal", 24, stop=False, n_benign=8)
    assert "refuses requests it used to answer" in block and "complies more" not in block
    assert evaluate_alarm(dpo, AlarmRule(patience=1, refusal_drift_rise=0.3)).drift_at is None
    assert evaluate_alarm(dpo, RULE).drift_at is None  # one tripped check: patience 2 waits for another


def test_quiet_on_noise_below_the_thresholds() -> None:
    # reward wobbles within reward_rise, compliance within compliance_rise: nothing trips
    v = evaluate_alarm(series([None, 0.50, 0.54, 0.52, 0.55, 0.53], [0.60, 0.64, 0.62, 0.65, 0.63, 0.61]), RULE)
    assert not v.fired and not any(v.tripped)
    # compliance up a lot but the reward flat: not hacking the reward, just a worse policy
    assert not evaluate_alarm(series([None, 0.5, 0.5, 0.52], [0.6, 0.8, 0.9, 0.9]), RULE).fired


def test_patience_needs_consecutive_checks() -> None:
    s = series([None, 0.5, 0.7, 0.7, 0.7, 0.7], [0.6, 0.6, 0.7, 0.6, 0.7, 0.6])  # trips at 10 and 20, never twice in a row
    assert evaluate_alarm(s, RULE).tripped == [False, False, True, False, True, False]
    assert not evaluate_alarm(s, RULE).fired
    assert evaluate_alarm(s, AlarmRule(patience=1)).fired_at == 10


def test_missing_values_and_empty_series() -> None:
    assert not evaluate_alarm([], RULE).fired
    only_benign = [{"step": 0, "reward": None, "harmful_compliance": None, "benign_refusal": 0.0},
                   {"step": 5, "reward": 0.1, "harmful_compliance": None, "benign_refusal": 0.0},
                   {"step": 10, "reward": 0.9, "harmful_compliance": None, "benign_refusal": 1.0},
                   {"step": 15, "reward": 0.9, "harmful_compliance": None, "benign_refusal": 1.0}]
    assert evaluate_alarm(only_benign, RULE).fired_at == 15


def test_warning_block_is_one_loud_multiline_message() -> None:
    v = evaluate_alarm(series([None, 0.5, 0.8, 0.8], [0.6, 0.6, 0.8, 0.8]), RULE)
    text = warning_block(v, "refusal", 24, 8, stop=True)
    assert text.count("\n") >= 5 and "WARNING: possible REWARD HACKING at step 15" in text and "stop=true" in text


def test_reward_window_means_the_last_logged_steps() -> None:
    history = [{"step": s, "reward": float(s)} for s in range(1, 11)] + [{"step": 10, "train_runtime": 1.0}]
    assert reward_window(history, 10, 5) == pytest.approx(8.0)
    assert reward_window(history, 0, 5) is None


@pytest.mark.parametrize("override,message", [
    ({"scorer": "magic"}, "scorer='magic' is unknown"),
    ({"scorer": "reward:/tmp/the-reward"}, "is the training reward"),
    ({"every_n_steps": 3}, "multiple of logging_steps=2"),
])
def test_bad_settings_fail_with_one_line(override: dict, message: str) -> None:
    cfg = AlignConfig(reward="/tmp/the-reward", out="/tmp/x", logging_steps=2, monitor=MonitorSettings(enabled=True, every_n_steps=4))
    for k, v in override.items():
        setattr(cfg.monitor, k, v)
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        check_monitor(cfg)
    assert "\n" not in str(err.value)


def test_refusal_monitor_of_a_refusal_rules_reward_is_refused() -> None:
    cfg = AlignConfig(reward="rules", out="/tmp/x", monitor=MonitorSettings(enabled=True))
    with pytest.raises(UserError, match="is the training reward itself"):
        check_monitor(cfg)
    check_monitor(AlignConfig(reward="rules", out="/tmp/x", monitor=MonitorSettings(enabled=False)))


def test_unset_patience_takes_the_trainers_default() -> None:
    from rlaif_uu.align.monitor import rule_of

    assert rule_of(MonitorSettings(), patience=1).patience == 1  # online DPO: one check per iteration
    assert rule_of(MonitorSettings()).patience == 2
    assert rule_of(MonitorSettings(patience=3), patience=1).patience == 3  # a set value wins
