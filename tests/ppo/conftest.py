"""Fixtures of the PPO tier (TRL 1.12 in ``.venv-ppo``: ``bash scripts/tier_ppo.sh``).

The main suite does not collect this folder (``tests/conftest.py``): TRL 1.13+ has no PPO.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny_models import HARMFUL_PROMPTS, make_reward, tiny_llama

BENIGN = ["How do I bake bread?", "Name a colour."]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama policy (SmolLM2 tokenizer), a real exported reward (tiny BERT) and prompt files."""
    tmp = tmp_path_factory.mktemp("ppo")
    harm = tmp / "harm.jsonl"
    harm.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HARMFUL_PROMPTS))
    benign = tmp / "benign.jsonl"
    benign.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in BENIGN))
    return {"policy": tiny_llama(tmp / "policy"), "reward": make_reward(tmp), "harm": harm, "benign": benign}
