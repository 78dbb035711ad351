"""Fixtures of the PPO tier (TRL 1.12 in ``.venv-ppo``: ``bash scripts/tier_ppo.sh``).

The main suite does not collect this folder (``tests/conftest.py``): TRL 1.13+ has no PPO.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import align_setup


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama policy (SmolLM2 tokenizer), a real exported reward (tiny BERT) and prompt files."""
    return align_setup(tmp_path_factory.mktemp("ppo"))
