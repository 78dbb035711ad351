"""Rounds: the budget split, the annotator kinds, the stage list of a K-round run and the rule reward."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from rlaif_uu.label.cheap import RuleJudge
from rlaif_uu.reward.rule_reward import RefusalRuleReward
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.gold import _answers, _query, label_every_row, round_budgets, simulated_label
from rlaif_uu.run.stages import build_stages, stage_hashes
from tests.conftest import write_jsonl

REFUSE = "I'm sorry, but I can't help with that."
COMPLY = "Sure! First, gather the materials."


@pytest.mark.parametrize("budget,already,rounds,expected", [(50, 20, 2, [15, 15]), (50, 20, 4, [8, 8, 7, 7]),
                                                            (10, 10, 3, [0, 0, 0]), (7, 0, 1, [7])])
def test_round_budgets_spread_what_the_gold_files_leave(budget: int, already: int, rounds: int, expected: list[int]) -> None:
    assert round_budgets(budget, already, rounds) == expected


def test_a_budget_below_the_gold_files_is_refused() -> None:
    with pytest.raises(UserError, match="already has 60 rows"):
        round_budgets(50, 60, 2)


def test_simulated_annotator_follows_the_request_and_the_answer() -> None:
    rules = RuleJudge()
    assert simulated_label("harmful", COMPLY, rules) == 1
    assert simulated_label("harmful", "I'm glad you're here. I'm glad to help you with that.", rules) == 1  # an opener complies
    assert simulated_label("harmful", REFUSE, rules) == 0
    assert simulated_label("benign", COMPLY, rules) == 0
    assert simulated_label("benign", REFUSE, rules) == 0  # an over-refusal is not harmful (the reward penalises it apart)


def _cfg(tmp: Path, *overrides: str) -> RecipeConfig:
    return load_config(RecipeConfig, None, {"out": str(tmp / "run")},
                       ["data.corpus=builtin:safety", *overrides])


ROWS = [{"id": "a", "prompt": "How do I make a bomb?", "response": COMPLY, "source": "on_policy-harmful"},
        {"id": "b", "prompt": "How do I bake bread?", "response": REFUSE, "source": "on_policy-benign"}]


def test_queue_annotator_stops_with_one_line_then_reads_the_answers(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "annotator.kind=queue")
    queue = tmp_path / "queue.csv"
    with pytest.raises(UserError, match=f"label 2 rows in {queue}"):
        _answers(cfg, ROWS, queue)
    header, *lines = queue.read_text().splitlines()
    assert header.split(",")[-1] == "gold_label" and len(lines) == 2 and "How do I make a bomb?" in lines[0]
    with pytest.raises(UserError, match="label 2 rows"):  # a rerun before answering stops again, the file kept
        _answers(cfg, ROWS, queue)
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "gold_label": "harmful"}, {"id": "b", "gold_label": ""}])
    with pytest.raises(UserError, match="label 1 rows"):
        _answers(cfg, ROWS, tmp_path / "q.jsonl")
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "gold_label": "harmful"}, {"id": "b", "gold_label": "safe"}])
    assert _answers(cfg, ROWS, tmp_path / "q.jsonl") == {"a": 1, "b": 0}
    write_jsonl(tmp_path / "q.jsonl", [{"id": "a", "gold_label": "harmful"}, {"id": "zz", "gold_label": "safe"}])
    with pytest.raises(UserError, match="not the 2 rows this round picked"):
        _answers(cfg, ROWS, tmp_path / "q.jsonl")


def test_file_annotator_needs_every_picked_row(tmp_path: Path) -> None:
    labels = write_jsonl(tmp_path / "labels.jsonl", [{"id": "a", "gold_label": "harmful"}])
    cfg = _cfg(tmp_path, "annotator.kind=file", f"annotator.file={labels}")
    with pytest.raises(UserError, match="no gold_label for 1 rows"):
        _answers(cfg, ROWS, tmp_path / "missing.jsonl")
    assert json.loads((tmp_path / "missing.jsonl").read_text())["id"] == "b"  # the rows to label are written out
    write_jsonl(labels, [{"id": "a", "gold_label": "harmful"}, {"id": "b", "gold_label": "safe"}])
    assert _answers(cfg, ROWS, tmp_path / "missing.jsonl") == {"a": 1, "b": 0}


def test_simulated_annotator_answers_from_the_rules(tmp_path: Path) -> None:
    assert _answers(_cfg(tmp_path, "annotator.kind=simulated"), ROWS, tmp_path / "unused") == {"a": 1, "b": 0}


def test_stratified_annotator_strategy_asks_half_per_judge_label_among_the_rounds_answers(tmp_path: Path) -> None:
    labelled = [{"id": f"r{i}", "prompt": "p", "response": "r", "judge_label": "harmful" if i % 10 == 0 else "safe"}
                for i in range(60)]
    candidates = list(range(20, 60))  # this round's answers: 4 pseudo-harmful among 40
    picked = _query(_cfg(tmp_path, "annotator.strategy=stratified"), labelled, candidates, 8, seed=1)
    assert len(picked) == 8 and set(picked) <= set(candidates)
    assert sum(labelled[i]["judge_label"] == "harmful" for i in picked) == 4


def test_one_round_keeps_the_classic_stages_and_k_rounds_chain_policies(tmp_path: Path) -> None:
    one = build_stages(_cfg(tmp_path))
    assert [s.key for s in one] == ["label", "refine", "reward", "eval_before", "align", "eval_after", "compare"]
    cfg = _cfg(tmp_path, "rounds=2", "data.on_policy.samples=1", "annotator.kind=simulated", "annotator.budget=20")
    stages = build_stages(cfg)
    assert [s.key for s in stages] == [
        "round-1/label", "round-1/gold", "round-1/refine", "round-1/reward", "eval_before", "round-1/align", "round-1/eval",
        "round-2/label", "round-2/gold", "round-2/refine", "round-2/reward", "round-2/align", "round-2/eval", "compare"]
    by = {s.key: s for s in stages}
    run = tmp_path / "run"
    assert by["round-2/align"].config.policy == str(run / "round-1" / "align" / "policy")
    assert by["round-2/label"].extra["policy"] == str(run / "round-1" / "align" / "policy")
    assert by["round-2/label"].extra["previous_corpus"] == str(run / "round-1" / "data" / "corpus.jsonl")
    assert by["round-2/refine"].config.gold == str(run / "round-2" / "gold" / "gold.jsonl")
    assert by["round-2/gold"].config["previous_gold"] == str(run / "round-1" / "gold" / "gold.jsonl")
    assert [by[f"round-{r}/gold"].config["n"] for r in (1, 2)] == [10, 10]
    assert by["round-1/align"].config.prompts.seed != by["round-2/align"].config.prompts.seed  # other prompts each round
    assert by["compare"].config["after"] == str(run / "round-2" / "eval")
    from rlaif_uu.run.runner import STAGE_KINDS

    for s in one + stages:  # every stage is a row of the stage table and carries that row's config type
        assert isinstance(s.config, STAGE_KINDS[s.kind].config), (s.key, type(s.config))


def test_all_gold_arm_trains_refinement_on_the_annotators_label_of_every_row(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    write_jsonl(corpus, [{"id": "c1", "prompt": "Hi", "response": "Hello!", "gold_label": "safe"},
                         {"id": "c2", "prompt": "Make a bomb", "response": COMPLY, "gold_label": "harmful"}])
    cfg = _cfg(tmp_path, f"data.corpus={corpus}", "data.on_policy.samples=1", "annotator.kind=simulated",
               "annotator.label_all=true")
    by = {s.key: s for s in build_stages(cfg)}
    assert by["gold"].config["all"] and by["refine"].config.input == by["gold"].config["out"]
    assert "gold" in by["refine"].deps
    labelled = tmp_path / "labelled.jsonl"  # the judges got all four wrong
    write_jsonl(labelled, [{"id": "c1", "prompt": "Hi", "response": "Hello!", "judge_label": "harmful"},
                           {"id": "c2", "prompt": "Make a bomb", "response": COMPLY, "judge_label": "safe"},
                           {**ROWS[0], "id": "onpolicy-r1-0-a", "judge_label": "safe"},
                           {**ROWS[1], "id": "onpolicy-r1-0-b", "judge_label": "harmful"}])
    out = label_every_row(cfg, 1, labelled, tmp_path / "all.jsonl", tmp_path / "queue.csv")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["judge_label"] for r in rows] == ["safe", "harmful", "harmful", "safe"]
    assert [r["gold_label"] for r in rows] == [r["judge_label"] for r in rows]
    write_jsonl(corpus, [{"id": "c1", "prompt": "Hi", "response": "Hello!"}])
    with pytest.raises(UserError, match="gold_label"):
        label_every_row(cfg, 1, labelled, tmp_path / "all.jsonl", tmp_path / "queue.csv")


def test_rules_arm_trains_on_the_refusal_rules_and_label_all_needs_an_annotator(tmp_path: Path) -> None:
    by = {s.key: s for s in build_stages(_cfg(tmp_path, "align.reward=rules"))}
    assert by["align"].config.reward == "rules"
    assert by["eval_after"].config.reward == str(tmp_path / "run" / "reward")  # the eval still scores with the export
    from rlaif_uu.run.runner import validate

    with pytest.raises(UserError, match="label_all needs an annotator"):
        validate(_cfg(tmp_path, "annotator.label_all=true"))


def test_a_change_in_round_two_reruns_round_two_only(tmp_path: Path) -> None:
    base = ["rounds=2", "data.on_policy.samples=1"]
    a = stage_hashes(build_stages(_cfg(tmp_path, *base)), _cfg(tmp_path, *base))
    cfg = _cfg(tmp_path, *base, "align.steps=7")
    b = stage_hashes(build_stages(cfg), cfg)
    changed = [k for k in a if a[k] != b[k]]
    assert changed == ["round-1/align", "round-1/eval", "round-2/label", "round-2/refine", "round-2/reward", "round-2/align",
                       "round-2/eval", "compare"]  # eval_before and round 1's label/refine/reward are kept


def test_rule_reward_rewards_refusing_harm_and_answering_benign() -> None:
    reward = RefusalRuleReward()
    out = reward(["x"] * 4, [REFUSE, COMPLY, REFUSE, COMPLY], kind=["harmful", "harmful", "benign", "benign"])
    assert out == [1.0, 0.0, 0.0, 1.0]
    with pytest.raises(UserError, match="'kind' column"):
        reward(["x"], [REFUSE])


def _fake_run(monkeypatch: pytest.MonkeyPatch, calls: list[str], kill_at: str | None) -> None:
    """Stage runners that only create their folder and record the call; ``kill_at`` is interrupted like a Ctrl-C."""
    from rlaif_uu.run import runner

    def fake(stage: object, cfg: object) -> None:
        calls.append(stage.key)  # type: ignore[attr-defined]
        if stage.key == kill_at:  # type: ignore[attr-defined]
            raise KeyboardInterrupt
        stage.dir.mkdir(parents=True, exist_ok=True)  # type: ignore[attr-defined]

    monkeypatch.setattr(runner, "STAGE_KINDS", {k: dataclasses.replace(v, run=fake) for k, v in runner.STAGE_KINDS.items()})
    monkeypatch.setattr(runner, "validate", lambda cfg: None)
    monkeypatch.setattr(runner, "write_report", lambda cfg, out, manifest: out / "report.md")
    monkeypatch.setattr(runner, "headline", lambda rep: [])


def test_a_killed_run_resumes_at_the_round_and_stage_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rlaif_uu.run.runner import run_recipe

    overrides = ["rounds=2", "data.on_policy.samples=1", "annotator.kind=simulated", "annotator.budget=20"]
    keys = [s.key for s in build_stages(_cfg(tmp_path, *overrides))]
    for i, kill_at in enumerate(keys):
        cfg = _cfg(tmp_path / str(i), *overrides)
        (Path(cfg.out)).mkdir(parents=True)
        (Path(cfg.out) / "report.json").write_text("{}")
        calls: list[str] = []
        _fake_run(monkeypatch, calls, kill_at)
        with pytest.raises(KeyboardInterrupt):
            run_recipe(cfg)
        assert calls == keys[: i + 1]
        manifest = json.loads((Path(cfg.out) / "manifest.json").read_text())
        assert manifest["stages"][kill_at]["status"] == "interrupted"
        calls.clear()
        _fake_run(monkeypatch, calls, None)
        run_recipe(cfg)
        assert calls == keys[i:]  # nothing done twice, nothing lost
        monkeypatch.undo()
