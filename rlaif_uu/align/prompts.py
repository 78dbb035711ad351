"""The training prompt mix (harmful + benign) as a conversational ``datasets.Dataset``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rlaif_uu.align.config import PromptSettings
from rlaif_uu.data.schema import in_holdout
from rlaif_uu.errors import UserError
from rlaif_uu.eval.suites import load_prompts, resolve_suites


def source_prompts(source: str) -> list[dict[str, Any]]:
    """Prompt rows (``id``, ``prompt``) of a suite name, suite YAML, or JSONL/CSV/Parquet file."""
    path = Path(source)
    if path.suffix in (".jsonl", ".json", ".csv", ".parquet") or (path.exists() and not source.endswith((".yaml", ".yml"))):
        from rlaif_uu.data.io import read_records

        return [{"id": str(r["id"]), "prompt": r["prompt"]} for r in read_records(path, required=("prompt",))]

    (suite,) = resolve_suites([source])
    return load_prompts(suite)


def sources(spec: str) -> list[str]:
    """The prompt sources of a comma-separated ``harmful``/``benign`` setting."""
    return [s.strip() for s in spec.split(",") if s.strip()]


def mix_sources(cfg: PromptSettings) -> list[str]:
    """Every source name of the mix, harmful then benign (the sources whose hold-out the eval takes)."""
    return [s for spec in (cfg.harmful, cfg.benign) if spec for s in sources(spec)]


def training_candidates(source: str, holdout: float) -> list[dict[str, Any]]:
    """The prompts of one source outside the eval hold-out (what a training mix may draw from)."""
    return [r for r in source_prompts(source) if not in_holdout(r["id"], holdout)]


def _pick(spec: str, n: int, cfg: PromptSettings, kind: str) -> list[dict[str, Any]]:
    names = sources(spec)
    shares = [n // len(names) + (i < n % len(names)) for i in range(len(names))]  # an even split, the remainder first
    picked: list[dict[str, Any]] = []
    for name, share in zip(names, shares):
        rows = training_candidates(name, cfg.holdout)
        if share > len(rows):
            raise UserError(f"prompts.n_{kind}={n} asks {share} prompts of {name}, which has only {len(rows)} "
                            "outside the hold-out")
        keep = np.random.default_rng(cfg.seed).permutation(len(rows))[:share]
        picked += [rows[i] | {"kind": kind} for i in sorted(keep)]
    return picked


def build_prompts(cfg: PromptSettings) -> Any:
    """A shuffled, seeded dataset with ``prompt`` (chat messages), ``kind`` (harmful/benign) and ``id``."""
    from datasets import Dataset

    rows = _pick(cfg.harmful, cfg.n_harmful, cfg, "harmful")
    if cfg.benign and cfg.n_benign:
        rows += _pick(cfg.benign, cfg.n_benign, cfg, "benign")
    if not rows:
        raise UserError("the prompt mix is empty; set prompts.n_harmful / prompts.n_benign above 0")
    system = [{"role": "system", "content": cfg.system}] if cfg.system else []
    data = [{"id": r["id"], "kind": r["kind"], "prompt": system + [{"role": "user", "content": r["prompt"]}]} for r in rows]
    order = np.random.default_rng(cfg.seed).permutation(len(data))
    return Dataset.from_list([data[i] for i in order])


def benign_texts(dataset: Any) -> list[str]:
    """The user texts of the benign prompts of a built mix (for the refusal-on-benign penalty)."""
    return [row["prompt"][-1]["content"] for row in dataset if row["kind"] == "benign"]
