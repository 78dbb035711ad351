"""The training prompt mix: seeded, held-out split stable, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlaif_uu.align.config import PromptSettings
from rlaif_uu.align.prompts import benign_texts, build_prompts
from rlaif_uu.data.schema import in_holdout
from rlaif_uu.errors import UserError


def _file(path: Path, prefix: str, n: int) -> str:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "prompt": f"{prefix} prompt {i}"}) + "\n" for i in range(n)))
    return str(path)


def test_holdout_is_a_stable_fraction() -> None:
    ids = [f"id-{i}" for i in range(4000)]
    held = [i for i in ids if in_holdout(i, 0.3)]
    assert 0.27 < len(held) / len(ids) < 0.33
    assert held == [i for i in ids if in_holdout(i, 0.3)]
    assert set(held) <= {i for i in ids if in_holdout(i, 0.6)}  # a larger hold-out contains the smaller one
    assert not any(in_holdout(i, 0.0) for i in ids)


def test_mix_counts_kinds_seed_and_holdout(tmp_path: Path) -> None:
    cfg = PromptSettings(harmful=_file(tmp_path / "h.jsonl", "harm", 40), benign=_file(tmp_path / "b.jsonl", "ok", 40),
                         n_harmful=10, n_benign=5, holdout=0.5, system="Be safe.")
    data = build_prompts(cfg)
    assert sorted(data["kind"]) == ["benign"] * 5 + ["harmful"] * 10
    assert all(row["prompt"][0] == {"role": "system", "content": "Be safe."} for row in data)
    assert not any(in_holdout(i, 0.5) for i in data["id"])
    assert list(build_prompts(cfg)["id"]) == list(data["id"])
    other = build_prompts(PromptSettings(**{**cfg.__dict__, "seed": 1}))
    assert list(other["id"]) != list(data["id"])
    assert len(benign_texts(data)) == 5 and all(t.startswith("ok prompt") for t in benign_texts(data))


def test_too_many_prompts_and_missing_column(tmp_path: Path) -> None:
    harm = _file(tmp_path / "h.jsonl", "harm", 4)
    with pytest.raises(UserError, match="n_harmful=10 asks 10 prompts of .* which has only"):
        build_prompts(PromptSettings(harmful=harm, benign=None, n_harmful=10))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x"}) + "\n")
    with pytest.raises(UserError, match="prompt"):
        build_prompts(PromptSettings(harmful=str(bad), benign=None, n_harmful=1))
