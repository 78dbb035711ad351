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
