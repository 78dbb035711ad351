"""The one record schema of the pipeline and its label vocabulary.

Every stage reads and writes rows with these columns:

==================  ========  =====================================================
column              required  meaning
==================  ========  =====================================================
``id``              no        stable row id (default: hash of prompt + response)
``prompt``          yes       the user turn
``response``        yes*      the model turn; may be empty for prompt-only tasks
``judge_label``     refine    ``harmful``/``safe`` (also ``1``/``0``, ``unsafe``)
``judge_score``     no        judge log-odds of harm, higher = more harmful
``gold_label``      no        a trusted human label, same vocabulary
``refined_label``   output    label after refinement
``refined_score``   output    refined classifier logit, higher = more harmful
==================  ========  =====================================================

Polarity: ``harmful`` is the positive class, encoded 1.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

HARMFUL, SAFE = 1, 0
LABEL_NAMES = {HARMFUL: "harmful", SAFE: "safe"}
_LABEL_VALUES: dict[str, int] = {
    "harmful": HARMFUL,
    "unsafe": HARMFUL,
    "1": HARMFUL,
    "true": HARMFUL,
    "safe": SAFE,
    "0": SAFE,
    "false": SAFE,
}
ACCEPTED_LABELS = "harmful/safe (also unsafe, 1/0, true/false)"


def parse_label(value: Any) -> int | None:
    """Map a label cell to 1 (harmful) / 0 (safe); ``None`` for an empty cell.

    Raises:
        ValueError: for a value outside :data:`ACCEPTED_LABELS`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return None
        if value in (0, 1):
            return int(value)
        raise ValueError(f"unknown label {value!r}; expected {ACCEPTED_LABELS}")
    text = str(value).strip().lower()
    if text == "":
        return None
    if text in ("1.0", "0.0"):
        text = text[0]
    if text not in _LABEL_VALUES:
        raise ValueError(f"unknown label {value!r}; expected {ACCEPTED_LABELS}")
    return _LABEL_VALUES[text]


def parse_score(value: Any) -> float | None:
    """Parse an optional finite score; ``None`` for an empty cell.

    Raises:
        ValueError: for a non-number or a NaN/infinite value.
    """
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"score {value!r} is not a number") from None
    if not math.isfinite(score):
        raise ValueError(f"score {value!r} is not finite; drop the row or give a finite log-odds")
    return score


def content_id(prompt: str, response: str) -> str:
    """Default row id: the first 16 hex digits of sha256(prompt NUL response)."""
    return hashlib.sha256(f"{prompt}\x00{response}".encode()).hexdigest()[:16]


def classifier_text(prompt: str, response: str) -> str:
    """The text a safety classifier sees for one row (also used by the exported reward).

    Prompt-only rows (empty response) are the prompt alone.
    """
    if not response:
        return f"User: {prompt}"
    return f"User: {prompt}\nAssistant: {response}"


def split_classifier_text(text: str) -> tuple[str, str]:
    """Inverse of :func:`classifier_text`: the (user part, assistant part) of a classifier text."""
    user, sep, assistant = text.partition("\nAssistant: ")
    return user, assistant if sep else ""


def in_holdout(prompt_id: str, fraction: float) -> bool:
    """Whether a prompt id falls in the held-out fraction (a stable hash, the same on every machine)."""
    if fraction <= 0:
        return False
    bucket = int(hashlib.sha256(prompt_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction
