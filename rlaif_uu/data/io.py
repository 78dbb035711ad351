"""Readers and writers for pipeline records, with validation that names file, line and field.

Supported inputs: JSONL (``.jsonl``/``.json`` with one object per line), CSV,
Parquet, and a folder written by ``datasets.Dataset.save_to_disk``. Rows are
returned as plain dicts; label columns are normalised to ints (1 = harmful,
0 = safe, ``None`` = missing) and written back as ``harmful``/``safe``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rlaif_uu.data.schema import LABEL_NAMES, content_id, parse_label, parse_score
from rlaif_uu.errors import UserError

Row = dict[str, Any]
LABEL_COLUMNS = ("judge_label", "gold_label", "refined_label")
SCORE_COLUMNS = ("judge_score", "refined_score")


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def _read_text(path: Path) -> str:
    """The file as text; a UTF-8 byte-order mark (what spreadsheet programs write) is dropped."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}:{line}: bytes that are not UTF-8 (position {exc.start}); re-save the file as UTF-8"
        ) from None


def _iter_jsonl(path: Path) -> Iterator[tuple[int, Row]]:
    # JSON lines end at "\n" only: str.splitlines() would also split inside strings at U+2028, U+0085 etc.
    for number, line in enumerate(_read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: malformed JSON ({exc.msg}); each line must be one JSON object") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{number}: expected a JSON object per line, got {type(obj).__name__}")
        yield number, obj


def _iter_csv(path: Path) -> Iterator[tuple[int, Row]]:
    # The reader gets the whole text so that quoted fields keep their newlines.
    reader = csv.DictReader(io.StringIO(_read_text(path), newline=""))
    try:
        columns = reader.fieldnames or []
        while True:
            start = reader.line_num + 1  # a quoted field may span lines: name the line the row starts on
            row = next(reader, None)
            if row is None:
                return
            if None in row:
                raise UserError(f"{path}:{start}: more cells than the {len(columns)} columns of the header; "
                                "quote cells that contain commas")
            yield start, dict(row)
    except csv.Error as exc:
        raise UserError(f"{path}:{reader.line_num}: malformed CSV ({exc}); check the quotes on this line") from None


def _iter_table(rows: Iterable[Row]) -> Iterator[tuple[int | None, Row]]:
    for row in rows:
        yield None, row


def _iter_rows(path: Path) -> Iterator[tuple[int | None, Row]]:
    if path.is_dir():
        try:
            import datasets
        except ImportError:  # pragma: no cover - datasets is a core dependency
            raise UserError(f"{path}: reading a saved HF dataset needs `pip install datasets`") from None
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:  # noqa: BLE001 - datasets raises many types
            raise UserError(f"{path}: not a saved HF dataset ({exc}); pass JSONL, CSV, Parquet or a save_to_disk folder") from None
        if isinstance(ds, datasets.DatasetDict):
            raise UserError(f"{path}: a DatasetDict with splits {list(ds)}; pass the folder of one split")
        return _iter_table(ds.to_list())
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return _iter_jsonl(path)
    if suffix == ".csv":
        return _iter_csv(path)
    if suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UserError(f"{path}: not a readable Parquet file ({reason}); re-export it or pass JSONL/CSV") from None
        return _iter_table(table.to_pylist())
    raise UserError(f"{path}: unknown file type '{suffix}'; use .jsonl, .csv, .parquet or a saved HF dataset folder")


def read_records(path: str | os.PathLike[str], required: Sequence[str] = ("prompt",)) -> list[Row]:
    """Read and validate records.

    Args:
        path: the input file or saved-dataset folder.
        required: columns every row must have (the refine stage needs
            ``prompt``, ``response`` and ``judge_label``; a gold file ``gold_label``).

    Returns:
        Rows with ``id`` filled in (content hash when absent), labels as ints
        and scores as floats.

    Raises:
        UserError: naming the file, line and field for any invalid cell, a
            missing file, an empty file or duplicate ids.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: file not found")
    rows: list[Row] = []
    seen: dict[str, int | None] = {}
    for index, (line, raw) in enumerate(_iter_rows(path)):
        where = _where(path, line if line is not None else None) + ("" if line is not None else f" (row {index + 1})")
        rows.append(_validate(raw, required, where))
        row_id = rows[-1]["id"]
        if row_id in seen:
            raise UserError(f"{where}: duplicate id {row_id!r} (first seen at row {seen[row_id]}); ids must be unique")
        seen[row_id] = index + 1
    if not rows:
        raise UserError(f"{path}: no rows; the file is empty")
    return rows


def _validate(raw: Row, required: Sequence[str], where: str) -> Row:
    row = dict(raw)
    for field in ("prompt", "response"):
        if field in row:
            value = row[field]
            if value is None:
                row[field] = ""
            elif not isinstance(value, str):
                raise UserError(f"{where}: field '{field}' must be a string, got {type(value).__name__}")
    parsers: list[tuple[tuple[str, ...], Callable[[Any], Any]]] = [(LABEL_COLUMNS, parse_label), (SCORE_COLUMNS, parse_score)]
    for fields, parse in parsers:
        for field in fields:
            if field in row:
                try:
                    row[field] = parse(row[field])
                except ValueError as exc:
                    raise UserError(f"{where}: field '{field}': {exc}") from None
    for field in required:
        value = row.get(field)
        if value is None or (field == "prompt" and value.strip() == ""):
            need = "a non-empty string" if field == "prompt" else "a value"
            raise UserError(f"{where}: missing field '{field}'; every row needs {need}")
    if "prompt" in row:
        row.setdefault("response", "")
    if row.get("id") in (None, ""):
        if "prompt" not in row:
            raise UserError(f"{where}: a row needs an 'id' or a 'prompt' to identify it")
        row["id"] = content_id(row["prompt"], row["response"])
    else:
        row["id"] = str(row["id"])
    return row


def _export(row: Row) -> Row:
    out = dict(row)
    for field in LABEL_COLUMNS:
        if field in out and out[field] is not None:
            out[field] = LABEL_NAMES[parse_label(out[field])]  # type: ignore[index]
    return out


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_prefix(path: Path) -> str:
    # The pid in the name lets a later run tell a dead run's leftovers from a live run's work.
    return f".{path.name}.tmp{os.getpid()}-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def clean_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Remove temp files/folders of ``path`` left by killed runs (their process is gone); returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp(\d+)-")
    removed: list[Path] = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        try:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            removed.append(entry)
        except OSError:  # another run cleaned it first, or it is not ours to remove
            continue
    return removed


def check_output(path: str | os.PathLike[str], *, folder: bool = False, flag: str = "--out") -> Path:
    """Fail fast, before any long work, when ``path`` cannot be written.

    Checks that no parent is a regular file, that a file target is not a folder (and a folder
    target not a file), and that a file can be created where the output will go. Stale temp
    files of earlier killed runs of the same target are removed.

    Raises:
        UserError: naming the path and what to do.
    """
    path = Path(path)
    if folder and path.is_file():
        raise UserError(f"{path}: {flag} is a file, but a folder is written there; choose a folder path")
    if not folder and path.is_dir():
        raise UserError(f"{path}: {flag} is a folder; give a file name (for example {path / 'out.jsonl'})")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{path}: cannot write {flag} because {parent} is a file, not a folder; choose another {flag}")
    try:
        fd, probe = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{path}: cannot write {flag} in {parent} ({exc.strerror or exc}); choose a writable {flag}") from None
    clean_stale_temps(path)
    return path


def _write_error(path: Path, exc: OSError) -> UserError:
    return UserError(f"{path}: cannot write ({exc.strerror or exc}); choose a writable path")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the result should look like any written file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; on success it replaces ``path`` (folder or file) whole.

    Temp folders of earlier killed runs of the same ``path`` are removed first.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale_temps(path)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), dir=path.parent))
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _write_with(path: Path, writer: Callable[[IO[str]], None]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer(fh)


def write_records(path: str | os.PathLike[str], rows: Sequence[Row]) -> Path:
    """Write rows atomically as JSONL, CSV or Parquet (by extension); labels as names."""
    path = Path(path)
    out = [_export(r) for r in rows]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        _write_with(path, lambda fh: fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    elif suffix == ".csv":
        columns = list(dict.fromkeys(k for r in out for k in r))

        def _csv(fh: IO[str]) -> None:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            w.writerows(out)

        _write_with(path, _csv)
    elif suffix in (".parquet", ".pq"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        with atomic_path(path) as tmp:
            pq.write_table(pa.Table.from_pylist(out), tmp)
    else:
        raise UserError(f"{path}: unknown output type '{suffix}'; use .jsonl, .csv or .parquet")
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write one JSON document atomically (indented, UTF-8)."""
    path = Path(path)
    _write_with(path, lambda fh: json.dump(obj, fh, indent=2, ensure_ascii=False))
    return path
