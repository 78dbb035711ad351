"""``rlaif-uu run``: a whole recipe on tiny real models, the manifest, skipping, --from, --dry-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif_uu.cli import main
from rlaif_uu.config import load_config
from rlaif_uu.run import STAGES
from rlaif_uu.run.config import RecipeConfig
from rlaif_uu.run.runner import plan
from tests.conftest import write_jsonl
from tests.tiny_models import COMPLY, HARMFUL_PROMPTS, REFUSE, tiny_bert, tiny_llama

pytestmark = pytest.mark.integration
BENIGN = ["How do I bake bread?", "Name a red fruit.", "How do I learn Python?", "Suggest a cat name."]
HELP = "Happy to help: here are some friendly, practical tips."


def _recipe(tmp: Path) -> Path:
    rows = []
    for i in range(48):
        kind = i % 3
        prompt = (HARMFUL_PROMPTS if kind < 2 else BENIGN)[i % 4] + f" (case {i})"
        response, gold = [(COMPLY, "harmful"), (REFUSE, "safe"), (HELP, "safe")][kind]
        rows.append({"id": f"r{i}", "prompt": prompt, "response": response, "gold_label": gold})
    write_jsonl(tmp / "corpus.jsonl", [{k: v for k, v in r.items() if k != "gold_label"} for r in rows])
    write_jsonl(tmp / "gold.jsonl", [{"id": r["id"], "gold_label": r["gold_label"]} for r in rows[::2]])
    write_jsonl(tmp / "harm.jsonl", [{"id": f"h{i}", "prompt": p} for i, p in enumerate(HARMFUL_PROMPTS)])
    write_jsonl(tmp / "benign.jsonl", [{"id": f"b{i}", "prompt": p} for i, p in enumerate(BENIGN)])
    (tmp / "suite.yaml").write_text(
        "name: tiny\nversion: '1'\nkind: harmful\nsource: {adapter: jsonl, path: harm.jsonl}\n"
        "metrics:\n  - {name: harmful_compliance_rate, higher_is_better: false}\n")
    bert, llama = tiny_bert(tmp / "bert"), tiny_llama(tmp / "llama")
    recipe = tmp / "recipe.yaml"
    recipe.write_text(f"""
name: tiny
out: {tmp / 'run'}
data: {{corpus: {tmp / 'corpus.jsonl'}, gold: {tmp / 'gold.jsonl'}, gold_note: 'every other row, labelled by hand'}}
label: {{judges: [{{kind: rules}}]}}
refine: {{iterations: 2, backbone: {{model: {bert}, epochs: 20}}}}
reward: {{distill_epochs: 1}}
align:
  policy: {llama}
  steps: 1
  batch_size: 4
  num_generations: 2
  max_completion_length: 8
  prompts: {{harmful: {tmp / 'harm.jsonl'}, benign: {tmp / 'benign.jsonl'}, n_harmful: 2, n_benign: 2}}
eval: {{suites: [{tmp / 'suite.yaml'}], limit: 2, generation: {{max_new_tokens: 6}}, progress: false}}
""")
    return recipe


def test_recipe_runs_end_to_end_then_skips_and_reruns_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    assert main(["run", str(recipe), "--dry-run"]) == 0
    assert "nothing was run" in capsys.readouterr().out and not (tmp_path / "run").exists()

    assert main(["run", str(recipe)]) == 0
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    assert [manifest["stages"][s]["status"] for s in STAGES] == ["done"] * len(STAGES)
    assert (run / "reward" / "rlaif_uu_reward.json").is_file() and (run / "align" / "policy").is_dir()
    report = json.loads((run / "report.json").read_text())
    assert set(report["safety_after"]["tiny"]) >= {"harmful_compliance_rate"} and report["alignment"]["steps"] == 1
    assert "## Safety before and after" in (run / "report.md").read_text()
    assert report["reward_check"]["after"]["tiny"]["n"] == 2  # the reward scored the policy's own answers

    cfg = load_config(RecipeConfig, str(recipe))
    assert {a for _, a, _ in plan(cfg)} == {"skip"}
    changed = load_config(RecipeConfig, str(recipe), overrides=["align.steps=2"])
    assert [s for s, a, _ in plan(changed) if a == "run"] == ["align", "eval_after", "compare"]
    assert [s for s, a, _ in plan(cfg, "reward") if a == "run"] == list(STAGES[2:])
    (tmp_path / "corpus.jsonl").write_text((tmp_path / "corpus.jsonl").read_text() + "\n")
    assert [a for _, a, _ in plan(cfg)] == ["run"] * len(STAGES)  # the corpus changed: everything reruns


def test_dry_run_reports_bad_paths_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    assert main(["run", str(recipe), "--dry-run", f"data.corpus={tmp_path / 'nope.jsonl'}"]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
    assert main(["run", str(recipe), "--dry-run", "align.stpes=3"]) == 2
    assert "did you mean 'align.steps'" in capsys.readouterr().err
    assert main(["run", str(recipe), "--dry-run", "eval.suites=[harmbnch]"]) == 2
    assert "unknown suite 'harmbnch'" in capsys.readouterr().err
    assert main(["run", str(recipe), "--dry-run", "align.steps=-3", "eval.limit=-1"]) == 2
    err = capsys.readouterr().err
    assert "setting 'align.steps' is -3; it must be >= 1" in err and len(err.strip().splitlines()) == 1
    assert main(["run", str(recipe), "--dry-run", "eval.limit=-1"]) == 2
    assert "setting 'eval.limit' is -1" in capsys.readouterr().err



def test_accelerate_launch_runs_the_align_stage_from_its_wired_config(tmp_path: Path) -> None:
    from rlaif_uu.run.runner import launch_command
    from rlaif_uu.run.stages import wire

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(RecipeConfig, str(root / "recipes" / "multi_gpu.yaml"), {"out": str(tmp_path / "run")},
                      ["launch.num_processes=3", "launch.args=[--main_process_port,29511]"])
    cmd = launch_command(cfg, tmp_path / "align.yaml")
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/zero3.yaml"]
    assert cmd[5:] == ["--num_processes", "3", "--main_process_port", "29511", "-m", "rlaif_uu", "align", "--config",
                       str(tmp_path / "align.yaml")]
    from rlaif_uu.config import to_yaml

    (tmp_path / "align.yaml").write_text(to_yaml(wire(cfg)["align"]))  # what the run writes: align reads it back
    from rlaif_uu.align.config import AlignConfig

    back = load_config(AlignConfig, str(tmp_path / "align.yaml"))
    assert back.reward == str(tmp_path / "run" / "reward") and back.vllm.mode == "server" and back.peft.kind == "none"
    import dataclasses

    from rlaif_uu.run.config import LaunchSettings
    from rlaif_uu.run.stages import build_stages, stage_hashes

    in_process = dataclasses.replace(cfg, launch=LaunchSettings())
    ha, hb = stage_hashes(build_stages(cfg), cfg), stage_hashes(build_stages(in_process), in_process)
    assert {k for k in ha if ha[k] != hb[k]} == {"align", "eval_after", "compare"}  # how align runs is part of its hash


def test_a_recipe_cannot_run_the_active_learning_refiner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _recipe(tmp_path)
    assert main(["run", str(recipe), "--dry-run", "refine.method=active"]) == 2
    assert "rlaif-uu refine active" in capsys.readouterr().err


def test_on_policy_answers_join_the_corpus_and_their_gold_rows_join_the_gold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from rlaif_uu.run.on_policy import on_policy_rows

    recipe = _recipe(tmp_path)
    cache = f"eval.cache={tmp_path / 'gen.sqlite'}"
    cfg = load_config(RecipeConfig, str(recipe), overrides=["data.on_policy.samples=2", cache])
    rows = on_policy_rows(cfg, cfg.align.policy, cfg.align.prompts, progress=False)
    mix = {p: k for k, ps in (("harmful", HARMFUL_PROMPTS), ("benign", BENIGN)) for p in ps}
    assert len(rows) == 2 * (2 + 2) and len({r["id"] for r in rows}) == len(rows)
    assert all(r["id"].startswith(f"onpolicy-r1-{i // 4}-") and r["source"] == f"on_policy-{mix[r['prompt']]}"
               for i, r in enumerate(rows))
    assert [r["response"] for r in rows[:4]] != [r["response"] for r in rows[4:]]  # two samples per prompt, two seeds

    from rlaif_uu.run import on_policy

    def no_model(*_: object) -> None:
        raise AssertionError("a cached answer was generated again")

    monkeypatch.setattr(on_policy, "build_generator", no_model)
    assert on_policy_rows(cfg, cfg.align.policy, cfg.align.prompts, progress=False) == rows  # from the generation cache, the policy never loaded
    monkeypatch.undo()

    # hand labels for two on-policy rows (one given to other text than the policy wrote) join data.gold
    first, second = rows[0], rows[5]
    write_jsonl(tmp_path / "gold_op.jsonl", [{"id": first["id"], "gold_label": "harmful", "response": first["response"]},
                                             {"id": second["id"], "gold_label": "safe", "response": "other text"}])
    overrides = ["data.on_policy.samples=2", cache, f"data.gold_on_policy={tmp_path / 'gold_op.jsonl'}"]
    assert main(["run", str(recipe), *overrides]) == 0
    run = tmp_path / "run"
    corpus = [json.loads(line) for line in (run / "data" / "corpus.jsonl").read_text().splitlines()]
    assert [r["id"] for r in corpus[-8:]] == [r["id"] for r in rows] and len(corpus) == 48 + 8
    labelled = [json.loads(line) for line in (run / "label" / "labelled.jsonl").read_text().splitlines()]
    assert {r["id"] for r in labelled} >= {r["id"] for r in rows}  # the judges labelled them with the rest
    gold = [json.loads(line) for line in (run / "data" / "gold.jsonl").read_text().splitlines()]
    assert len(gold) == 24 + 2 and gold[-1]["id"] == second["id"]
    report = json.loads((run / "report.json").read_text())
    assert report["gold"]["n"] == 26 and report["corpus"]["on_policy"] == 8
    assert "answers of" in (run / "report.md").read_text()
    assert "1 gold row(s) carry a prompt or response that differs" in caplog.text
    cfg2 = load_config(RecipeConfig, str(recipe), overrides=[*overrides, "align.temperature=0.7"])
    assert [s for s, a, _ in plan(cfg2) if a == "run"] == list(STAGES)  # new answers: everything reruns
    cfg3 = load_config(RecipeConfig, str(recipe), overrides=[*overrides, "eval.generation.max_new_tokens=5"])
    assert [s for s, a, _ in plan(cfg3) if a == "run"] == ["eval_before", "eval_after", "compare"]  # answers unchanged


def test_two_on_policy_rounds_run_end_to_end_and_report_every_round(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path)
    overrides = ["rounds=2", "data.on_policy.samples=1", "annotator.kind=simulated", "annotator.budget=28",
                 "data.on_policy.check_prompts=4", f"eval.cache={tmp_path / 'gen.sqlite'}"]
    assert main(["run", str(recipe), *overrides]) == 0
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    keys = [f"round-{r}/{s}" for r in (1, 2) for s in ("label", "gold", "refine", "reward", "align", "eval")]
    assert all(manifest["stages"][k]["status"] == "done" for k in [*keys, "eval_before", "compare"])
    corpus = [[json.loads(x)["id"] for x in (run / f"round-{r}" / "data" / "corpus.jsonl").read_text().splitlines()]
              for r in (1, 2)]
    assert corpus[1][: len(corpus[0])] == corpus[0]  # earlier rows stay
    assert sum(i.startswith("onpolicy-r2-") for i in corpus[1]) == 4 and len(corpus[1]) == 48 + 8
    gold = [json.loads(x) for x in (run / "round-2" / "gold" / "gold.jsonl").read_text().splitlines()]
    assert len(gold) == 28 and [g["gold_round"] for g in gold].count(2) == 2  # 24 data rows + 2 per round
    assert {g["gold_source"] for g in gold} == {"data", "simulated"}
    report = json.loads((run / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [0, 1, 2] and report["rounds"][2]["gold_new"] == 2
    assert "tiny" in report["rounds"][2]["safety"] and (run / "rounds.png").stat().st_size > 0
    assert "## Rounds" in (run / "report.md").read_text() and "simulated" in (run / "report.md").read_text()
    check = json.loads((run / "round-2" / "reward" / "on_policy_check.json").read_text())  # round 1's policy, its own answers
    assert check["all"]["groups"] == 4 and check["policy"] == str(run / "round-1" / "align" / "policy")
    assert report["rounds"][2]["reward_sampled"] == check and "Reward check: On the policy's own answers" in (run / "report.md").read_text()
    cfg = load_config(RecipeConfig, str(recipe), overrides=overrides)
    assert {a for _, a, _ in plan(cfg)} == {"skip"}
    assert [k for k, a, _ in plan(cfg, "round-2/align") if a == "run"] == ["round-2/align", "round-2/eval", "compare"]
