"""Fixtures of the distributed tier (``bash scripts/tier_distributed.sh``, environment ``.venv-ds``).

Each test launches real processes (``accelerate launch``) on the CPU: 2-process DDP over gloo,
and 2-process DeepSpeed ZeRO-2 / ZeRO-3. The main suite does not collect this folder.
DeepSpeed compiles a small communication op on first use into ``$TORCH_EXTENSIONS_DIR``
(the tier script points it at the git-ignored ``.cache/torch_extensions``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_models import align_setup


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama policy (SmolLM2 tokenizer), a real exported reward (tiny BERT) and prompt files."""
    return align_setup(tmp_path_factory.mktemp("dist"))
