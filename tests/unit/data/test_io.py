"""Readers and writers: formats, validation messages, atomic writes."""

from pathlib import Path

import pytest

from rlaif_uu.data.io import read_records, write_records
from rlaif_uu.errors import UserError

REQ = ("prompt", "response", "judge_label")


def _rows() -> list[dict]:
    return [{"prompt": "p1", "response": "r1", "judge_label": "harmful", "judge_score": 1.5},
            {"prompt": "p2", "response": "", "judge_label": 0, "gold_label": "safe"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    path = write_records(tmp_path / f"x{suffix}", [r | {"id": f"i{n}"} for n, r in enumerate(_rows())])
    rows = read_records(path, REQ)
    assert [r["judge_label"] for r in rows] == [1, 0]
    assert rows[0]["judge_score"] == pytest.approx(1.5)
    assert rows[1]["response"] == ""
    assert [r["id"] for r in rows] == ["i0", "i1"]


def test_hf_dataset_folder(tmp_path: Path) -> None:
    import datasets

    rows = [{"prompt": "p1", "response": "r1", "judge_label": "harmful"}, {"prompt": "p2", "response": "", "judge_label": "safe"}]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    rows = read_records(tmp_path / "ds", REQ)
    assert len(rows) == 2 and rows[0]["judge_label"] == 1


def test_ids_default_to_content_hash(tmp_path: Path) -> None:
    path = write_records(tmp_path / "x.jsonl", _rows())
    a, b = read_records(path, REQ), read_records(path, REQ)
    assert a[0]["id"] == b[0]["id"] and a[0]["id"] != a[1]["id"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"prompt": "a", "response": "b", "judge_label": "safe"}\n{"prompt": oops}\n', r"x.jsonl:2: malformed JSON"),
        ('{"prompt": "a", "judge_label": "safe"}\n', r"x.jsonl:1: missing field 'response'"),
        ('{"response": "b", "judge_label": "safe"}\n', r"x.jsonl:1: missing field 'prompt'"),
        ('{"prompt": "", "response": "b", "judge_label": "safe"}\n', r"x.jsonl:1: missing field 'prompt'"),
        ('{"prompt": "a", "response": "b"}\n', r"x.jsonl:1: missing field 'judge_label'"),
        ('{"prompt": "a", "response": "b", "judge_label": "maybe"}\n', r"x.jsonl:1: field 'judge_label': unknown label 'maybe'"),
        ('{"prompt": "a", "response": "b", "judge_label": 1, "judge_score": NaN}\n', r"x.jsonl:1: field 'judge_score'.*not finite"),
        ('{"prompt": "a", "response": "b", "judge_label": 1, "judge_score": "Infinity"}\n', r"judge_score.*not finite"),
        ('', r"x.jsonl: no rows"),
        ('{"id": 1, "prompt": "a", "response": "b", "judge_label": 1}\n{"id": 1, "prompt": "c", "response": "d", "judge_label": 0}\n',
         r"x.jsonl:2: duplicate id '1'"),
    ],
)
def test_bad_jsonl(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=message):
        read_records(path, REQ)


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b", "judge_label": 1}\n{"prompt": "\xff\xfe", "response": "b", "judge_label": 1}\n')
    with pytest.raises(UserError, match=r"x.jsonl:2: bytes that are not UTF-8"):
        read_records(path, REQ)


def test_csv_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("prompt,response,judge_label\na,b,safe\nc,d,perhaps\n")
    with pytest.raises(UserError, match=r"x.csv:3: field 'judge_label'"):
        read_records(path, REQ)


def test_missing_file_and_unknown_type(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        read_records(tmp_path / "nope.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match="unknown file type"):
        read_records(tmp_path / "x.txt")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(TypeError):
        write_records(target, [{"prompt": object()}])
    assert list(tmp_path.iterdir()) == []


def test_csv_keeps_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text('id,prompt,response,judge_label\na,"line one\nline two",r,safe\nb,p,"x\r\ny",harmful\n', newline="")
    rows = read_records(path, REQ)
    assert rows[0]["prompt"] == "line one\nline two" and rows[1]["response"] == "x\r\ny"
    path.write_text('prompt,response,judge_label\n"a\nb",r,safe\nc,d,perhaps\n')
    with pytest.raises(UserError, match=r"x.csv:4: field 'judge_label'"):  # the row that starts on line 4
        read_records(path, REQ)


def test_csv_with_more_cells_than_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("prompt,response,judge_label\na,b,safe,extra\n")
    with pytest.raises(UserError, match=r"x.csv:2: more cells than the 3 columns"):
        read_records(path, REQ)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085"])
def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path, separator: str) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(f'{{"prompt": "a{separator}b", "response": "r", "judge_label": 1}}\n', encoding="utf-8")
    assert read_records(path, REQ)[0]["prompt"] == f"a{separator}b"


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_utf8_bom_is_dropped(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"x{suffix}"
    jsonl = '{"id": "mine", "prompt": "a", "response": "b", "judge_label": 0}\n'
    text = "id,prompt,response,judge_label\nmine,a,b,safe\n" if suffix == ".csv" else jsonl
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    rows = read_records(path, REQ)
    assert rows[0]["id"] == "mine" and "\ufeffid" not in rows[0]
    gold = tmp_path / "gold.csv"
    gold.write_bytes(b"\xef\xbb\xbfid,gold_label\nmine,harmful\n")
    assert read_records(gold, required=("gold_label",))[0] == {"id": "mine", "gold_label": 1}


@pytest.mark.parametrize("content", [b"PAR1 this is not parquet", b"", b"PAR1" + b"\x00" * 64 + b"PAR1"])
def test_corrupt_parquet_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.parquet"
    path.write_bytes(content)
    with pytest.raises(UserError, match=r"x.parquet: not a readable Parquet file"):
        read_records(path, REQ)


def _unwritable_targets(tmp_path: Path) -> list[tuple[Path, bool, str]]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "adir").mkdir(exist_ok=True)
    return [
        (afile / "out.jsonl", False, r"afile is a file, not a folder"),
        (afile / "deeper" / "run", True, r"afile is a file, not a folder"),
        (tmp_path / "adir", False, r"--out is a folder"),
        (afile, True, r"--out is a file"),
        (Path("/proc/rlaif_uu_test/out.jsonl"), False, r"cannot write --out"),
    ]


def test_check_output_refuses_unwritable_paths(tmp_path: Path) -> None:
    from rlaif_uu.data.io import check_output

    for target, folder, match in _unwritable_targets(tmp_path):
        with pytest.raises(UserError, match=match):
            check_output(target, folder=folder)
    assert check_output(tmp_path / "new" / "sub" / "out.jsonl") == tmp_path / "new" / "sub" / "out.jsonl"
    assert not (tmp_path / "new").exists()  # checking creates nothing


def test_writers_turn_os_errors_into_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"cannot write"):
        write_records(tmp_path / "afile" / "out.jsonl", _rows())


def test_stale_temps_of_dead_runs_are_removed(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from rlaif_uu.data.io import atomic_dir

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    stale = tmp_path / f".run.tmp{dead}-abc123"
    (stale / "classifier").mkdir(parents=True)
    live = tmp_path / f".run.tmp{os.getpid()}-live"  # a run still going: kept
    live.mkdir()
    other = tmp_path / f".other.tmp{dead}-x"  # another target's: kept
    other.mkdir()
    with atomic_dir(tmp_path / "run") as tmp:
        (tmp / "done").write_text("ok")
    assert not stale.exists() and live.exists() and other.exists()
    assert (tmp_path / "run" / "done").read_text() == "ok"
