"""The judge call shape, an SQLite verdict cache, and the cached judging loop.

Every judge (LLM backends and the cheap judges) is a callable
``judge(prompts, responses) -> list[Verdict]`` with a ``judge_id``, a ``template_key``
and a ``threshold`` (label = score > threshold; scores are log-odds-like, higher = more
harmful). A :class:`Verdict` with ``score=None`` is an abstention.

Cache layout (one file, any number of judges)::

    meta(key TEXT PRIMARY KEY, value TEXT)            -- schema_version, created_by
    verdicts(judge TEXT, template TEXT, content TEXT, -- content = sha256(prompt NUL response)
             score REAL, meta TEXT, created REAL,
             PRIMARY KEY (judge, template, content))

:func:`judge_rows` commits after every batch, so a run killed with SIGKILL keeps every
verdict it had answered and a rerun asks the judge only for what is missing. A file
that is not such a cache, is corrupt, or has another schema version is refused with a
:class:`~rlaif_uu.errors.UserError`; it is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlaif_uu.errors import UserError

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class Verdict:
    """One judge answer: ``score`` (higher = more harmful; ``None`` = abstained) and backend details."""

    score: float | None
    meta: dict[str, Any] = field(default_factory=dict)


class Judge(Protocol):
    """What :func:`judge_rows` needs from a judge."""

    threshold: float

    @property
    def judge_id(self) -> str: ...

    @property
    def template_key(self) -> str: ...

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Verdict]: ...


def content_key(prompt: str, response: str) -> str:
    """Full sha256 hex of ``prompt NUL response`` (the cache's content key)."""
    return hashlib.sha256(f"{prompt}\x00{response}".encode()).hexdigest()


class VerdictCache:
    """An SQLite file of verdicts keyed by (judge id, template key, content hash).

    Args:
        path: the cache file; created (with its folder) when missing.

    Raises:
        UserError: the file is not an SQLite database, is corrupt, is some other
            database, or has another schema version.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path)
            self._open()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise UserError(
                f"{self.path}: not a readable verdict cache ({exc}); move it away or pass another --cache path "
                "(it is never overwritten)"
            ) from None

    def _close_quietly(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    def _open(self) -> None:
        cur = self.conn.cursor()
        check = cur.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        tables = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            cur.execute("PRAGMA journal_mode=WAL")
            with self.conn:
                cur.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                cur.execute(
                    "CREATE TABLE verdicts (judge TEXT NOT NULL, template TEXT NOT NULL, content TEXT NOT NULL, "
                    "score REAL, meta TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (judge, template, content))"
                )
                cur.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", SCHEMA_VERSION), ("created_by", "rlaif_uu")])
            return
        if not {"meta", "verdicts"} <= tables:
            raise UserError(f"{self.path}: an SQLite file but not a rlaif-uu verdict cache (tables {sorted(tables)}); pass another cache path")
        row = cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = row[0] if row else None
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{self.path}: verdict cache schema version {version!r}, this rlaif-uu reads version {SCHEMA_VERSION!r}; "
                "move the file away or pass another cache path (it is never overwritten)"
            )

    def get_many(self, judge_id: str, template_key: str, contents: Sequence[str]) -> dict[str, Verdict]:
        """Cached verdicts for the given content keys (missing keys are absent from the result)."""
        found: dict[str, Verdict] = {}
        unique = list(dict.fromkeys(contents))
        for start in range(0, len(unique), 500):
            chunk = unique[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT content, score, meta FROM verdicts WHERE judge=? AND template=? AND content IN ({marks})",
                (judge_id, template_key, *chunk),
            )
            for content, score, meta in rows:
                found[content] = Verdict(score=score, meta=json.loads(meta))
        return found

    def put_many(self, judge_id: str, template_key: str, items: Sequence[tuple[str, Verdict]]) -> None:
        """Store verdicts and commit (one transaction)."""
        now = time.time()
        with self.conn:
            self.conn.executemany(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                [(judge_id, template_key, c, v.score, json.dumps(v.meta, sort_keys=True), now) for c, v in items],
            )

    def count(self, judge_id: str | None = None) -> int:
        """Number of stored verdicts (of one judge, or all)."""
        if judge_id is None:
            return int(self.conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0])
        return int(self.conn.execute("SELECT COUNT(*) FROM verdicts WHERE judge=?", (judge_id,)).fetchone()[0])

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> VerdictCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class JudgeRun:
    """Result of :func:`judge_rows`: per-row scores (NaN = abstained), labels (-1 = abstained) and counts."""

    scores: np.ndarray
    labels: np.ndarray
    meta: list[dict[str, Any]]
    n_cached: int
    n_judged: int
    n_abstained: int
    seconds: float


def judge_rows(
    judge: Judge,
    prompts: Sequence[str],
    responses: Sequence[str],
    cache: VerdictCache | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> JudgeRun:
    """Judge rows, answering from ``cache`` first and storing every new batch as soon as it is done.

    Identical (prompt, response) rows are judged once. Missing rows are sorted by length
    before batching so that padding stays small.

    Args:
        judge: any :class:`Judge`.
        prompts: user turns.
        responses: model turns ("" for prompt-only judging).
        cache: the verdict cache, or None to judge everything.
        batch_size: rows per judge call (and per cache commit).
        progress: show a tqdm bar with rows/s.

    Returns:
        A :class:`JudgeRun` aligned with the input rows.
    """
    from tqdm import tqdm

    if len(prompts) != len(responses):
        raise ValueError("prompts and responses differ in length")
    start = time.monotonic()
    keys = [content_key(p, r) for p, r in zip(prompts, responses)]
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    done = cache.get_many(judge.judge_id, judge.template_key, list(first)) if cache is not None else {}
    n_cached = len(done)
    todo = sorted((k for k in first if k not in done), key=lambda k: len(prompts[first[k]]) + len(responses[first[k]]))
    with tqdm(total=len(todo), desc=f"judge {judge.judge_id}", unit="row", disable=not progress or not todo) as bar:
        for b in range(0, len(todo), batch_size):
            batch = todo[b : b + batch_size]
            verdicts = judge([prompts[first[k]] for k in batch], [responses[first[k]] for k in batch])
            if len(verdicts) != len(batch):
                raise RuntimeError(f"judge {judge.judge_id} returned {len(verdicts)} verdicts for {len(batch)} rows")
            if cache is not None:  # a failure (meta "error") is not an answer: a rerun asks again
                cache.put_many(judge.judge_id, judge.template_key, [(k, v) for k, v in zip(batch, verdicts) if "error" not in v.meta])
            done.update(zip(batch, verdicts))
            bar.update(len(batch))
    scores = np.array([np.nan if (v := done[k].score) is None else float(v) for k in keys])
    labels = np.where(np.isnan(scores), -1, (scores > judge.threshold).astype(int))
    return JudgeRun(
        scores=scores,
        labels=labels,
        meta=[done[k].meta for k in keys],
        n_cached=n_cached,
        n_judged=len(todo),
        n_abstained=int(np.isnan(scores).sum()),
        seconds=time.monotonic() - start,
    )
