"""An SQLite cache of completions so that rescoring never regenerates and a killed run resumes.

Layout::

    meta(key TEXT PRIMARY KEY, value TEXT)                 -- schema_version, created_by
    settings(key TEXT PRIMARY KEY, json TEXT)               -- settings key -> model id + settings
    completions(settings TEXT, prompt TEXT, completion TEXT, seconds REAL, created REAL,
                PRIMARY KEY (settings, prompt))             -- prompt = sha256 of the prompt text

The settings key (:func:`rlaif_uu.eval.generation.settings_key`) hashes the model's
identity and every setting that changes the text. :func:`generate_cached` commits after
every batch, so a run killed with SIGKILL keeps every finished batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlaif_uu.errors import UserError

SCHEMA_VERSION = "1"


def prompt_key(prompt: str) -> str:
    """sha256 hex of the prompt text."""
    return hashlib.sha256(prompt.encode()).hexdigest()


class GenerationCache:
    """Completions keyed by (settings key, prompt hash).

    Raises:
        UserError: the file is not an SQLite database, is corrupt, or is another kind of database.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn: sqlite3.Connection | None = None
        try:
            self.conn = sqlite3.connect(self.path)
            self._open(self.conn)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise UserError(f"{self.path}: not a readable generation cache ({exc}); move it away or pass another "
                            "--cache path (it is never overwritten)") from None

    def _open(self, conn: sqlite3.Connection) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                conn.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, json TEXT NOT NULL)")
                conn.execute("CREATE TABLE completions (settings TEXT NOT NULL, prompt TEXT NOT NULL, completion TEXT NOT NULL, "
                             "seconds REAL NOT NULL, created REAL NOT NULL, PRIMARY KEY (settings, prompt))")
                conn.executemany("INSERT INTO meta VALUES (?, ?)", [("schema_version", SCHEMA_VERSION), ("created_by", "rlaif_uu.eval")])
            return
        if not {"meta", "settings", "completions"} <= tables:
            self.close()
            raise UserError(f"{self.path}: an SQLite file but not a rlaif-uu generation cache (tables {sorted(tables)}); "
                            "pass another --cache path")
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if not row or row[0] != SCHEMA_VERSION:
            self.close()
            raise UserError(f"{self.path}: generation cache schema {row[0] if row else None!r}, expected {SCHEMA_VERSION!r}; "
                            "move it away or pass another --cache path")

    def _db(self) -> sqlite3.Connection:
        if self.conn is None:
            raise RuntimeError("generation cache is closed")
        return self.conn

    def register(self, key: str, settings: dict[str, Any]) -> None:
        """Record what a settings key stands for (model id and settings), for inspection."""
        with self._db() as conn:
            conn.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(settings, sort_keys=True)))

    def get_many(self, key: str, prompts: Sequence[str]) -> dict[str, tuple[str, float]]:
        """Cached ``(completion, seconds it took)`` by prompt hash for ``prompts`` under settings ``key``."""
        hashes = list(dict.fromkeys(prompt_key(p) for p in prompts))
        found: dict[str, tuple[str, float]] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start:start + 500]
            rows = self._db().execute(
                f"SELECT prompt, completion, seconds FROM completions WHERE settings=? AND prompt IN ({','.join('?' * len(chunk))})",
                (key, *chunk))
            found.update((h, (c, s)) for h, c, s in rows.fetchall())
        return found

    def put_many(self, key: str, items: Sequence[tuple[str, str]], seconds: float) -> None:
        """Store ``(prompt, completion)`` pairs in one transaction; ``seconds`` is the batch's time per row."""
        now = time.time()
        with self._db() as conn:
            conn.executemany("INSERT OR REPLACE INTO completions VALUES (?, ?, ?, ?, ?)",
                             [(key, prompt_key(p), c, seconds, now) for p, c in items])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class GenerationRun:
    """Completions aligned with the prompts, how many came from the cache, and timings.

    ``seconds`` is this call's wall time; ``generation_seconds`` the time the backend spent on
    these prompts when they were generated (this run or an earlier one), from the cache.
    """

    completions: list[str]
    n_cached: int
    n_generated: int
    seconds: float
    generation_seconds: float


def generate_cached(
    make_generator: Callable[[], Callable[[Sequence[str]], Sequence[str | None]]],
    prompts: Sequence[str],
    cache: GenerationCache,
    key: str,
    batch_size: int,
    progress: bool = True,
    desc: str = "generate",
) -> GenerationRun:
    """Answer from the cache first; generate the rest in batches, committing each batch.

    Args:
        make_generator: builds the backend; called only when some prompt is not cached (a
            fully cached rerun never loads the model).
        prompts: the prompts (duplicates are generated once).
        cache: the completion cache.
        key: the settings key.
        batch_size: prompts per backend call and per commit; missing prompts are sorted by
            length so that batches pad little.
        progress: show a tqdm bar.
        desc: the bar's label.
    """
    from tqdm import tqdm

    start = time.monotonic()
    done = cache.get_many(key, prompts)
    first = {prompt_key(p): p for p in prompts}
    todo = sorted((h for h in first if h not in done), key=lambda h: len(first[h]))
    n_cached = len(first) - len(todo)
    if todo:
        generate = make_generator()
        with tqdm(total=len(todo), desc=desc, unit="prompt", disable=not progress) as bar:
            for b in range(0, len(todo), batch_size):
                batch = [first[h] for h in todo[b:b + batch_size]]
                t0 = time.monotonic()
                outs = generate(batch)
                if len(outs) != len(batch):
                    raise RuntimeError(f"generator returned {len(outs)} completions for {len(batch)} prompts")
                per_row = (time.monotonic() - t0) / len(batch)
                answered = [(p, c) for p, c in zip(batch, outs) if c is not None]  # None: a server fault, never cached
                cache.put_many(key, answered, per_row)
                done.update((prompt_key(p), (c, per_row)) for p, c in answered)
                bar.update(len(batch))
        missing = sum(1 for h in first if h not in done)
        if missing:
            raise UserError(f"{missing} of {len(first)} prompts got no completion (the server answered without choices "
                            "or with empty text); the others are cached: check the server, then rerun to ask for the rest")
    return GenerationRun([done[prompt_key(p)][0] for p in prompts], n_cached, len(todo), time.monotonic() - start,
                         sum(done[h][1] for h in first))
