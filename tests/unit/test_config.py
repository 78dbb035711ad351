"""Config layering: dataclass < YAML < flags < dotted overrides, with helpful errors."""

from pathlib import Path

import pytest

from rlaif_uu.config import load_config
from rlaif_uu.errors import UserError
from rlaif_uu.refine.config import RefineConfig


def test_layers_override_in_order(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("input: a.jsonl\nout: o\niterations: 3\nbackbone:\n  lr: 0.5\n")
    cfg = load_config(RefineConfig, str(y), {"iterations": 4, "seed": None}, ["backbone.lr=0.1", "lam=-0.5"])
    assert (cfg.input, cfg.iterations, cfg.backbone.lr, cfg.lam, cfg.seed) == ("a.jsonl", 4, 0.1, -0.5, 0)


def test_a_dotted_flag_is_a_nested_setting(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("input: a.jsonl\nout: o\nbackbone:\n  lr: 0.5\n")
    cfg = load_config(RefineConfig, str(y), {"backbone.lr": 0.2})
    assert cfg.backbone.lr == 0.2
    with pytest.raises(UserError, match="unknown config key 'backbone.lrr'.*did you mean 'backbone.lr'"):
        load_config(RefineConfig, str(y), {"backbone.lrr": 0.2})


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown config key 'iteratons'.*did you mean 'iterations'"):
        load_config(RefineConfig, None, {"input": "a", "out": "b"}, ["iteratons=3"])
    with pytest.raises(UserError, match="did you mean 'backbone.lr'"):
        load_config(RefineConfig, None, {"input": "a", "out": "b"}, ["backbone.lrr=3"])


def test_wrong_type_and_missing_value() -> None:
    with pytest.raises(UserError, match="iterations"):
        load_config(RefineConfig, None, {"input": "a", "out": "b"}, ["iterations=many"])
    with pytest.raises(UserError, match="missing required setting 'out'"):
        load_config(RefineConfig, None, {"input": "a"})
    with pytest.raises(UserError, match="key=value"):
        load_config(RefineConfig, None, {"input": "a", "out": "b"}, ["iterations"])


def test_base_file_is_loaded_first_and_relative_to_the_yaml(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text("input: a.jsonl\nout: o\niterations: 3\nbackbone:\n  lr: 0.5\n  epochs: 7\n")
    (tmp_path / "sub" / "mid.yaml").write_text("base: ../base.yaml\niterations: 4\n")
    (tmp_path / "sub" / "top.yaml").write_text("base: mid.yaml\nbackbone:\n  lr: 0.1\n")
    cfg = load_config(RefineConfig, str(tmp_path / "sub" / "top.yaml"), None, ["seed=2"])
    assert (cfg.input, cfg.iterations, cfg.backbone.lr, cfg.backbone.epochs, cfg.seed) == ("a.jsonl", 4, 0.1, 7, 2)


def test_base_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        load_config(RefineConfig, str(tmp_path / "a.yaml"))
    (tmp_path / "c.yaml").write_text("base: nope.yaml\n")
    with pytest.raises(UserError, match=r"nope.yaml: config file not found \(the base of .*c.yaml\)"):
        load_config(RefineConfig, str(tmp_path / "c.yaml"))


@pytest.mark.parametrize(
    "override, match",
    [
        ("iterations=0", r"setting 'iterations' is 0; it must be >= 1"),
        ("backbone.lr=-1e-3", r"setting 'backbone.lr' is -0.001; it must be > 0"),
        ("val_fraction=1.5", r"setting 'val_fraction' is 1.5; it must be in \(0, 1\)"),
        ("seed=-1", r"setting 'seed' is -1; it must be >= 0"),
        ("lam=nan", r"setting 'lam' is nan; it must be a finite number"),
    ],
)
def test_numbers_out_of_range_are_one_line(override: str, match: str) -> None:
    with pytest.raises(UserError, match=match):
        load_config(RefineConfig, None, {"input": "a", "out": "b"}, [override])


def test_ranges_reach_nested_lists_and_every_stage() -> None:
    from rlaif_uu.align.config import AlignConfig
    from rlaif_uu.label.config import LabelConfig

    with pytest.raises(UserError, match=r"setting 'steps' is -3; it must be >= 1"):
        load_config(AlignConfig, None, {"reward": "r", "out": "o", "steps": -3})
    with pytest.raises(UserError, match=r"setting 'judges.0.concurrency' is 0"):
        load_config(LabelConfig, None, {"input": "a", "out": "b", "judges": [{"kind": "openai", "concurrency": 0}]})
    assert load_config(AlignConfig, None, {"reward": "r", "out": "o", "steps": 1}).steps == 1


def test_every_numeric_setting_of_every_stage_has_a_range() -> None:
    import dataclasses
    import typing

    from rlaif_uu.config_ranges import rule_for
    from rlaif_uu.run.config import RecipeConfig

    def unlisted(cls: type, prefix: str) -> list[str]:
        out: list[str] = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
            if typing.get_origin(hints[f.name]) in (list, dict):
                kinds = typing.get_args(hints[f.name])[-1:]
            nested = [k for k in kinds if dataclasses.is_dataclass(k)]
            if "tagged" in f.metadata:  # a judge or backbone: each kind's own dataclass
                nested = list(f.metadata["tagged"].kinds.values())
            for k in nested:
                out += unlisted(k, f"{prefix}{f.name}.")
            if not nested and any(k in (int, float) for k in kinds) and rule_for(cls, f.name, f.metadata) is None:
                out.append(f"{cls.__name__}.{f.name} ({prefix}{f.name})")
        return out

    missing = unlisted(RecipeConfig, "")
    assert not missing, f"give these numeric settings a range in rlaif_uu/config_ranges.py: {missing}"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    y = tmp_path / "bad.yaml"
    y.write_text("input: a.jsonl\nout: o\nbackbone:\n  lr: [0.1\n  epochs: 3\nseed: 1\n")
    with pytest.raises(UserError, match=r"bad.yaml:\d+:\d+: not valid YAML") as info:
        load_config(RefineConfig, str(y))
    assert len(str(info.value).splitlines()) == 1
    y.write_text("input: a.jsonl\n\tout: o\n")
    with pytest.raises(UserError, match=r"bad.yaml:2:1: not valid YAML"):
        load_config(RefineConfig, str(y))


def test_a_choice_outside_its_set_names_the_setting_the_choices_and_the_closest() -> None:
    from rlaif_uu.config_ranges import check_choice

    check_choice("loss", "pn", ("robust_uu", "uu", "pn"))
    with pytest.raises(UserError, match=r"^loss 'robust-uu' is unknown; use one of robust_uu, uu, pn \(did you mean 'robust_uu'\?\)$"):
        check_choice("loss", "robust-uu", ("robust_uu", "uu", "pn"))
    with pytest.raises(UserError, match=r"use one of robust_uu, uu, pn$"):
        check_choice("loss", "hinge", ("robust_uu", "uu", "pn"))


def test_a_setting_the_chosen_kind_does_not_read_is_an_error(tmp_path: Path) -> None:
    from rlaif_uu.label.config import LabelConfig, OpenAIJudgeConfig, RulesJudgeConfig, judge_config
    from rlaif_uu.refine.config import EncoderBackboneConfig, FrozenBackboneConfig, backbone_config

    with pytest.raises(UserError, match=r"^judge.base_url applies to kind openai, not to kind 'rules': remove it"):
        judge_config("rules", base_url="http://127.0.0.1:1/v1")
    with pytest.raises(UserError, match=r"^backbone.head applies to kind frozen, not to kind 'causal'"):
        backbone_config("causal", head="mlp")
    with pytest.raises(UserError, match=r"^unknown config key 'backbone.poolng'; did you mean 'backbone.pooling'\?$"):
        backbone_config("encoder", poolng="cls")
    with pytest.raises(UserError, match=r"^backbone.kind 'encodr' is unknown; use one of frozen, encoder, causal \(did you mean 'encoder'\?\)$"):
        backbone_config("encodr")
    assert judge_config("rules", threshold=0.5) == RulesJudgeConfig(threshold=0.5)  # every kind reads a threshold
    # In the config layer: the YAML's kind picks the dataclass; the error names the layer and the key.
    y = tmp_path / "r.yaml"
    y.write_text("input: a.jsonl\nout: o\nbackbone: {kind: frozen, head: mlp}\n")
    assert load_config(RefineConfig, str(y)).backbone == FrozenBackboneConfig(head="mlp")
    with pytest.raises(UserError, match=r"^overrides: backbone.pooling applies to kind encoder, not to kind 'frozen'"):
        load_config(RefineConfig, str(y), overrides=["backbone.pooling=cls"])
    # Another kind starts from its own defaults, so the frozen head does not follow it.
    got = load_config(RefineConfig, str(y), overrides=["backbone.kind=encoder", "backbone.pooling=cls", "backbone.lr=1e-4"])
    assert got.backbone == EncoderBackboneConfig(pooling="cls", lr=1e-4)
    with pytest.raises(UserError, match=r"setting 'backbone.lr' is -1; it must be > 0"):
        load_config(RefineConfig, str(y), overrides=["backbone.lr=-1"])
    y.write_text("input: a\nout: b\njudges:\n  - {kind: rules}\n  - {kind: openai, model: m, base_url: u, text: pair}\n")
    with pytest.raises(UserError, match=r"r.yaml: judges\[1\].text applies to kind embedding, not to kind 'openai'"):
        load_config(LabelConfig, str(y))
    got = load_config(LabelConfig, None, {"input": "a", "out": "b", "judges": [{"kind": "openai", "model": "m", "concurrency": "3"}]})
    assert got.judges == [OpenAIJudgeConfig(model="m", concurrency=3)]
    with pytest.raises(UserError, match=r"config key 'judges\[0\].concurrency'.*"):
        load_config(LabelConfig, None, {"input": "a", "out": "b", "judges": [{"kind": "openai", "concurrency": "many"}]})
