"""Fixtures of the distributed tier (``bash scripts/tier_distributed.sh``, environment ``.venv-ds``).

Each test launches real processes (``accelerate launch``) on the CPU: 2-process DDP over gloo,
and 2-process DeepSpeed ZeRO-2 / ZeRO-3. The main suite does not collect this folder.
DeepSpeed compiles a small communication op on first use into ``$TORCH_EXTENSIONS_DIR``
(the tier script points it at the git-ignored ``.cache/torch_extensions``).
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
    tmp = tmp_path_factory.mktemp("dist")
    harm = tmp / "harm.jsonl"
    harm.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in HARMFUL_PROMPTS))
    benign = tmp / "benign.jsonl"
    benign.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in BENIGN))
    return {"policy": tiny_llama(tmp / "policy"), "reward": make_reward(tmp), "harm": harm, "benign": benign}
