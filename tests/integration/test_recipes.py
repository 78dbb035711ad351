"""Every recipe in recipes/ loads and dry-runs; the quickstart's smoke variant runs end to end on the real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif_uu.align.config import AlignConfig
from rlaif_uu.assets import QWEN_JUDGE, get_asset
from rlaif_uu.cli import main
from rlaif_uu.config import load_config
from rlaif_uu.run import STAGES
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.stages import build_stages

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
RUN_RECIPES = sorted(p for d in ("", "ladder", "ladder_dpo", "ladder_dpo_qwen") for p in (ROOT / "recipes" / d).glob("*.yaml"))


def test_there_are_run_recipes() -> None:
    names = {p.stem for p in RUN_RECIPES}
    assert {"quickstart", "quickstart_smoke", "quickstart_grpo", "quickstart_raw_judge", "quickstart_rounds",
            "quickstart_rounds_smoke", "one_gpu", "multi_gpu", "refined", "raw_judge", "all_gold", "rules"} <= names
    assert len([p for p in RUN_RECIPES if p.parent.name == "ladder_dpo"]) == 4


@pytest.mark.parametrize("recipe", RUN_RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_opens_with_its_command_and_dry_runs(recipe: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    text = recipe.read_text()
    comment = text.splitlines()
    assert comment[0].startswith("# ")
    assert any(f"rlaif-uu run {recipe.relative_to(ROOT)}" in line for line in comment[:8] if line.startswith("#"))
    monkeypatch.chdir(ROOT)  # recipes name repo files (gold rows, accelerate configs) relative to the root
    code = main(["run", str(recipe), "--dry-run", "--out", str(tmp_path / "run")])
    out, err = capsys.readouterr()
    if QWEN_JUDGE in text and not get_asset(QWEN_JUDGE).locate():  # the 1.1 GB judge is optional
        assert code != 0 and f"rlaif-uu assets --install {QWEN_JUDGE}" in err and "Traceback" not in err
        return
    assert code == 0
    keys = [s.key for s in build_stages(load_config(RecipeConfig, str(recipe), {"out": str(tmp_path / "run")}))]
    assert "nothing was run" in out and all(f"] {k}" in out for k in keys)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", sorted((ROOT / "recipes" / "align").glob("*.yaml")), ids=lambda p: p.stem)
def test_align_recipes_load(recipe: Path) -> None:
    cfg = load_config(AlignConfig, str(recipe), {"reward": "r", "out": "o"})
    assert cfg.steps > 0 and cfg.policy


def test_ablation_differs_from_the_grpo_quickstart_only_in_refinement_and_names() -> None:
    qs = load_config(RecipeConfig, str(ROOT / "recipes" / "quickstart_grpo.yaml"))
    raw = load_config(RecipeConfig, str(ROOT / "recipes" / "quickstart_raw_judge.yaml"))
    assert (raw.refine.loss, raw.refine.iterations, raw.refine.select) == ("pn", 1, "last")
    assert (qs.label, qs.align, qs.eval, qs.data, qs.reward) == (raw.label, raw.align, raw.eval, raw.data, raw.reward)


def test_quickstart_smoke_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    cache = [f"label.cache={tmp_path / 'verdicts.sqlite'}", f"eval.cache={tmp_path / 'gen.sqlite'}"]
    assert main(["run", "recipes/quickstart_smoke.yaml", "--out", str(run), *cache]) == 0
    manifest = json.loads((run / "manifest.json").read_text())
    stages = [*STAGES, "gold"]
    assert sorted(manifest["stages"]) == sorted(stages) and {v["status"] for v in manifest["stages"].values()} == {"done"}
    report = json.loads((run / "report.json").read_text())
    # the corpus left out the rows whose prompt the eval holds out, and the eval measured only held-out prompts
    assert 0 < report["corpus"]["dropped_heldout"] < report["corpus"]["rows"] + report["corpus"]["dropped_heldout"]
    held = json.loads((run / "eval_before" / "report.json").read_text())["holdout"]
    assert held == {"donotanswer": 0.5, "harmbench_test": 0.5, "benign": 0.5, "overrefusal": 0.5}
    assert report["gold"]["n"] == 23 and report["refinement"]["gold_accuracy_per_iteration"][0] is not None
    assert set(report["safety_after"]) == {"donotanswer", "strongreject", "benign", "overrefusal"}
    log = json.loads((run / "align" / "train_log.json").read_text())
    assert log["algorithm"] == "dpo" and [h["iteration"] for h in log["log_history"] if "iteration" in h] == [1]
    assert [c["step"] for c in json.loads((run / "align" / "monitor.json").read_text())["checks"]] == [0, 1]
    md = (run / "report.md").read_text()
    for section in ("## Judges", "## Refinement", "## Alignment", "## Safety before and after", "## Time per stage"):
        assert section in md
    capsys.readouterr()
    assert main(["run", "recipes/quickstart_smoke.yaml", "--out", str(run), "--dry-run", *cache]) == 0
    assert capsys.readouterr().out.count(" skip ") == len(stages)  # a rerun would redo nothing


def test_quickstart_rounds_smoke_runs_two_rounds_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    run = tmp_path / "run"
    cache = [f"label.cache={tmp_path / 'verdicts.sqlite'}", f"eval.cache={tmp_path / 'gen.sqlite'}"]
    assert main(["run", "recipes/quickstart_rounds_smoke.yaml", "--out", str(run), *cache]) == 0
    report = json.loads((run / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2]
    assert [r["gold_new"] for r in report["rounds"][1:]] == [3, 3] and report["gold"]["n"] == 26
    assert all(r["reward_pairwise"]["harmful"]["n"] == 4 for r in report["rounds"][1:])
    assert set(report["safety_after"]) == {"donotanswer", "strongreject", "benign", "overrefusal"}
    assert (run / "round-2" / "align" / "monitor.json").is_file()
