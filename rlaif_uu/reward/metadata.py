"""The reward folder's contract: one logit, higher = safer, described by ``rlaif_uu_reward.json``.

TRL reads ``logits[:, 0]`` of a reward model. A folder with two labels, or one whose
logit means "harmful", would silently train a policy *toward* harm, so every consumer
(SafetyReward, ``rlaif-uu align``, ``rlaif-uu eval``) checks the folder first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlaif_uu.errors import UserError

METADATA_FILE = "rlaif_uu_reward.json"
FORMAT = "rlaif_uu.reward/1"
POLARITY = "higher_is_safer"


def load_reward_metadata(path: str | Path) -> dict[str, Any]:
    """Validate an exported reward folder and return its metadata.

    Raises:
        UserError: not a folder, no ``config.json``, more than one label, no metadata
            file, or a polarity other than ``higher_is_safer``.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: reward model folder not found; export one with `rlaif-uu reward export`")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); export one with `rlaif-uu reward export`")
    config = json.loads(config_file.read_text())
    labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 2))
    if labels != 1:
        raise UserError(
            f"{path}: the classifier has {labels} labels; TRL rewards with logits[:, 0], which for a multi-label "
            "classifier is an arbitrary class and may reward harm. Export a one-logit reward with `rlaif-uu reward export`"
        )
    meta_file = path / METADATA_FILE
    if not meta_file.is_file():
        raise UserError(
            f"{path}: no {METADATA_FILE}, so the logit's polarity is unknown (a harm-positive logit would train the "
            "policy toward harm); export the reward with `rlaif-uu reward export`"
        )
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{meta_file}: not valid JSON ({exc.msg}, line {exc.lineno}); re-export the reward") from None
    if meta.get("polarity") != POLARITY:
        raise UserError(f"{meta_file}: polarity {meta.get('polarity')!r}; expected {POLARITY!r} (higher logit = safer)")
    return meta
