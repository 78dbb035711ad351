"""The reward folder's contract: one logit, higher = safer, described by ``rlaif_uu_reward.json``.

TRL reads ``logits[:, 0]`` of a reward model. A folder with two labels, or one whose
logit means "harmful", would silently train a policy *toward* harm, so every consumer
(SafetyReward, ``rlaif-uu align``, ``rlaif-uu eval``) checks the folder first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rlaif_uu.errors import UserError

METADATA_FILE = "rlaif_uu_reward.json"
FORMAT = "rlaif_uu.reward/1"
POLARITY = "higher_is_safer"


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, corrupt or non-object file is a one-line :class:`UserError` ending in ``what``."""
    if not path.is_file():
        raise UserError(f"{path}: missing; {what}")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        reason = f"{exc.msg}, line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise UserError(f"{path}: not valid JSON ({reason}); {what}") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(obj).__name__}; {what}")
    return obj


def check_safetensors(folder: Path, stem: str, what: str) -> list[Path]:
    """The ``stem*.safetensors`` weight files of ``folder``, each with a readable, complete header.

    Only safetensors are loaded (a pickled ``.bin`` can run code when loaded), so a folder
    with only ``.bin`` weights is refused.

    Raises:
        UserError: no safetensors weights, or a truncated/corrupt file; ends in ``what`` (what to do).
    """
    from safetensors import safe_open

    files = sorted(folder.glob(f"{stem}*.safetensors"))
    if not files:
        pickled = sorted(p.name for p in folder.glob("*.bin"))
        found = f" (found {', '.join(pickled)}: pickled weights are not loaded, they can run code)" if pickled else ""
        raise UserError(f"{folder}: no {stem}.safetensors{found}; {what}")
    for file in files:
        try:
            with safe_open(str(file), "pt") as handle:
                handle.keys()
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type and OSError
            raise UserError(f"{file}: unreadable weights ({str(exc).splitlines()[0]}; truncated or corrupt); {what}") from None
    return files


def load_reward_metadata(path: str | Path) -> dict[str, Any]:
    """Validate an exported reward folder and return its metadata.

    Raises:
        UserError: not a folder, no or corrupt ``config.json``, other than exactly one label,
            no safetensors weights or truncated ones, no metadata file, a polarity other than
            ``higher_is_safer``, or a temperature that is not a positive finite number.
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: reward model folder not found; export one with `rlaif-uu reward export`")
    redo = "re-export the reward with `rlaif-uu reward export`"
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); export one with `rlaif-uu reward export`")
    config = read_json(path / "config.json", redo)
    id2label = config.get("id2label") or {}
    sizes = ([len(id2label)] if id2label else []) + ([config["num_labels"]] if "num_labels" in config else [])
    wrong = [n for n in sizes or [2] if n != 1]  # transformers' default is two labels
    if wrong:
        raise UserError(
            f"{path}: the classifier has {wrong[0]} labels (config.json: num_labels {config.get('num_labels')}, "
            f"{len(id2label)} id2label entries); TRL rewards with logits[:, 0], which for a multi-label classifier is an "
            "arbitrary class and may reward harm. Export a one-logit reward with `rlaif-uu reward export`"
        )
    check_safetensors(path, "model", redo)
    meta_file = path / METADATA_FILE
    if not meta_file.is_file():
        raise UserError(
            f"{path}: no {METADATA_FILE}, so the logit's polarity is unknown (a harm-positive logit would train the "
            "policy toward harm); export the reward with `rlaif-uu reward export`"
        )
    meta = read_json(meta_file, redo)
    if meta.get("polarity") != POLARITY:
        raise UserError(f"{meta_file}: polarity {meta.get('polarity')!r}; expected {POLARITY!r} (higher logit = safer)")
    temperature = meta.get("temperature", 1.0)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise UserError(f"{meta_file}: temperature {temperature!r}; it must be a positive number (P(safe) = sigmoid(logit / T)); "
                        "set it to 1.0 or re-export the reward")
    return meta


def below_judge(calibration: dict[str, Any]) -> bool:
    """Whether, by an export's ``calibration``, the reward's sign agrees with fewer gold rows than the judge's labels do."""
    acc, judge = calibration.get("accuracy"), calibration.get("judge_accuracy")
    return acc is not None and judge is not None and acc < judge
