"""``rlaif-uu reward export`` measures and stores the within-prompt pairwise accuracy, on tiny real models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.reward import SafetyReward
from rlaif_uu.reward.config import ExportConfig
from rlaif_uu.reward.export import run_export
from rlaif_uu.reward.pairwise import PairwiseProbe, pairwise_accuracy, probe_prompts
from tests.tiny_models import tiny_bert, train_classifier

pytestmark = pytest.mark.integration


def test_export_stores_the_pairwise_accuracy_of_the_exported_reward(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cls = train_classifier(tiny_bert(tmp_path / "bert"), tmp_path / "classifier")
    probe = PairwiseProbe(limit=12, n_boot=200)
    try:
        harmful, benign = probe_prompts(probe)
    except UserError as exc:
        pytest.skip(str(exc))
    run_export(ExportConfig(source=str(cls), out=str(tmp_path / "reward"), pairwise=probe))
    meta = json.loads((tmp_path / "reward" / "rlaif_uu_reward.json").read_text())
    stored = meta["pairwise"]
    assert stored["probe"] == {"harmful": "strongreject", "benign": "overrefusal", "holdout": 0.5, "limit": 12, "seed": 0}
    assert stored["harmful"]["n"] == len(harmful) == 12 and stored["benign"]["n"] == len(benign) == 12
    # the stored number is the exported folder's own ranking, as TRL / SafetyReward read it
    reward = SafetyReward(tmp_path / "reward", output="logodds")
    again = pairwise_accuracy(lambda p, r: np.array(reward(p, r)), harmful, benign, n_boot=200)
    for kind in ("harmful", "benign", "balanced"):
        assert stored[kind]["accuracy"] == pytest.approx(again[kind]["accuracy"])
        lo, hi = stored[kind]["ci"]
        assert 0.0 <= lo <= stored[kind]["accuracy"] <= hi <= 1.0
    assert "Within-prompt pairwise accuracy: harmful" in capsys.readouterr().out
    assert "Within-prompt pairwise accuracy" in (tmp_path / "reward" / "README.md").read_text()
    run_export(ExportConfig(source=str(cls), out=str(tmp_path / "off"), pairwise=PairwiseProbe(enabled=False)))
    assert json.loads((tmp_path / "off" / "rlaif_uu_reward.json").read_text())["pairwise"] is None
    with pytest.raises(UserError, match="benign suite"):
        run_export(ExportConfig(source=str(cls), out=str(tmp_path / "bad"), pairwise=PairwiseProbe(harmful="overrefusal")))
