"""The run's corpus: a file or a built-in offline corpus, minus the prompts the evaluation holds out.

The label stage judges ``<run>/data/corpus.jsonl``, written here from ``data.corpus``:

* a JSONL/CSV/Parquet file or saved dataset (its columns kept), or
* ``builtin:safety``: the 800-row safety corpus built from the offline datasets
  (:func:`rlaif_uu.data.corpus.build_safety_corpus`); its dataset labels are dropped, so the
  only gold labels refinement sees are the ones ``data.gold`` names.

With ``data.exclude_heldout`` (default) and ``align.prompts.holdout > 0``, rows whose prompt
is a held-out prompt of the training mix are dropped: the reward never sees the prompts the
before/after evaluation measures on.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from rlaif_uu.align.prompts import mix_sources, source_prompts
from rlaif_uu.data.io import Row, read_records, write_json, write_records
from rlaif_uu.data.schema import in_holdout
from rlaif_uu.errors import UserError
from rlaif_uu.run.on_policy import on_policy_rows

if TYPE_CHECKING:
    from rlaif_uu.align.config import PromptSettings
    from rlaif_uu.run.config import RecipeConfig

BUILTIN = "builtin:"
BUILTIN_CORPORA = ("safety",)


def builtin_name(corpus: str) -> str | None:
    """The built-in corpus name of ``builtin:NAME`` (``None`` for a file).

    Raises:
        UserError: an unknown built-in name.
    """
    if not corpus.startswith(BUILTIN):
        return None
    name = corpus[len(BUILTIN):]
    if name not in BUILTIN_CORPORA:
        raise UserError(f"data.corpus '{corpus}': unknown built-in corpus; use "
                        + ", ".join(BUILTIN + n for n in BUILTIN_CORPORA) + " or a JSONL/CSV/Parquet file")
    return name


def corpus_digest(corpus: str) -> str:
    """sha256 of the corpus file (a built-in corpus is identified by its name)."""
    if builtin_name(corpus) is not None:
        return corpus
    path = Path(corpus)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def heldout_prompts(cfg: RecipeConfig) -> set[str]:
    """The prompt texts of the training mix's sources that ``align.prompts.holdout`` keeps out."""
    ps = cfg.align.prompts
    if ps.holdout <= 0:
        return set()
    return {r["prompt"].strip() for s in mix_sources(ps) for r in source_prompts(s) if in_holdout(r["id"], ps.holdout)}


def load_corpus(cfg: RecipeConfig) -> tuple[list[Row], int]:
    """The corpus rows to judge and how many rows were dropped as held-out prompts."""
    name = builtin_name(cfg.data.corpus)
    if name is not None:
        from rlaif_uu.data.corpus import build_safety_corpus

        rows = [{k: v for k, v in r.items() if k != "gold_label"} for r in build_safety_corpus(seed=0)]
    else:
        rows = read_records(cfg.data.corpus, required=("prompt",))
    if not cfg.data.exclude_heldout:
        return rows, 0
    held = heldout_prompts(cfg)
    kept = [r for r in rows if r["prompt"].strip() not in held]
    if not kept:
        raise UserError(f"data.corpus {cfg.data.corpus}: every row's prompt is a held-out eval prompt; "
                        "lower align.prompts.holdout or set data.exclude_heldout=false")
    return kept, len(rows) - len(kept)


def write_corpus(cfg: RecipeConfig, path: Path, policy: str, prompts: PromptSettings, round_no: int = 1,
                 previous: str | None = None) -> int:
    """Write the corpus the label stage judges to ``path`` (and ``corpus.json``, its summary beside it).

    The rows are ``previous`` (the corpus of the round before, earlier on-policy rows included) or,
    in round 1, ``data.corpus``; ``policy``'s answers to the mix ``prompts`` (``data.on_policy``,
    :mod:`rlaif_uu.run.on_policy`) follow them. Returns the number of rows dropped as held-out prompts.
    """
    rows, dropped = (read_records(previous, required=("prompt",)), 0) if previous else load_corpus(cfg)
    extra = on_policy_rows(cfg, policy, prompts, round_no, progress=cfg.label.progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, rows + extra)
    on_policy = sum(str(r.get("id", "")).startswith("onpolicy-") for r in rows + extra)
    write_json(path.with_suffix(".json"), {"source": cfg.data.corpus, "rows": len(rows) + len(extra),
                                           "dropped_heldout": dropped, "on_policy": on_policy, "new_on_policy": len(extra)})
    print(f"corpus: {len(rows)} rows from {previous or cfg.data.corpus}"
          + (f" + {len(extra)} answers of {policy} to the training prompts" if extra else "") + f" -> {path}"
          + (f" ({dropped} rows with a held-out eval prompt left out)" if dropped else ""))
    return dropped
