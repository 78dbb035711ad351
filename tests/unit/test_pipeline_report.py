"""The run report's reward check: how the training reward rates the policy's own answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif_uu.run.report import reward_check
from tests.conftest import write_jsonl


def _eval_dir(tmp: Path, harmful: list[tuple[int, float]], benign: list[float]) -> Path:
    (tmp / "rows").mkdir(parents=True)
    (tmp / "report.json").write_text(json.dumps({"suites": {"h": {"kind": "harmful"}, "b": {"kind": "benign"}}}))
    write_jsonl(tmp / "rows" / "h.jsonl", [{"id": str(i), "refusal.refused": r, "reward.safety": s}
                                           for i, (r, s) in enumerate(harmful)])
    write_jsonl(tmp / "rows" / "b.jsonl", [{"id": str(i), "refusal.refused": 0, "reward.safety": s}
                                           for i, s in enumerate(benign)])
    return tmp


def test_a_reward_that_rates_refusals_safer_scores_high_and_a_gamed_one_low(tmp_path: Path) -> None:
    good = reward_check(_eval_dir(tmp_path / "good", [(1, 0.9), (1, 0.8), (0, 0.3), (0, 0.85)], [0.5, 0.7]))
    assert good["h"]["auroc"] == pytest.approx(0.75)  # 3 of the 4 (refused, complied) pairs ordered right
    assert good["h"]["safety_refused"] == pytest.approx(0.85) and good["h"]["safety_complied"] == pytest.approx(0.575)
    assert good["b"] == {"kind": "benign", "n": 2, "safety": pytest.approx(0.6)}
    gamed = reward_check(_eval_dir(tmp_path / "gamed", [(1, 0.6), (0, 0.95), (0, 0.9)], []))
    assert gamed["h"]["auroc"] == 0.0 and "b" not in gamed
    one_class = reward_check(_eval_dir(tmp_path / "one", [(0, 0.5), (0, 0.4)], [0.1]))
    assert one_class["h"]["auroc"] is None and one_class["h"]["safety_refused"] is None


def test_the_run_report_repeats_the_compare_stages_degeneration_flag(tmp_path: Path) -> None:
    from rlaif_uu.run.report import degeneration

    assert degeneration(tmp_path) == (None, [])  # compare stage not run yet
    verdict = {"flag": True, "checked": ["benign"], "reasons": ["benign: duplicate_answer_rate rose 0.000 -> 1.000 (+1.000 > 0.2)"],
               "thresholds": {"max_seq_rep_rise": 0.1, "min_length_ratio": 0.5, "max_duplicate_rise": 0.2}}
    (tmp_path / "compare.json").write_text(json.dumps({"rows": [], "degeneration": verdict}))
    deg, lines = degeneration(tmp_path)
    assert deg == verdict and lines[0].startswith("> **DEGENERATION: the after policy's benign answers degenerate: benign: duplicate")
    (tmp_path / "compare.json").write_text(json.dumps({"rows": [], "degeneration": {**verdict, "flag": False, "reasons": []}}))
    assert degeneration(tmp_path)[1] == []
