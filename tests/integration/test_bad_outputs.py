"""Unwritable output paths and nonsense numbers stop every verb at once, with one line and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlaif_uu.cli import main
from tests.conftest import make_rows, write_jsonl

pytestmark = pytest.mark.integration


def _bad_outs(tmp_path: Path, name: str) -> list[tuple[Path, str]]:
    afile = tmp_path / "afile"
    afile.write_text("x")
    return [(afile / name, "is a file, not a folder"), (Path("/proc/rlaif_uu_test") / name, "cannot write --out")]


def _one_line(capsys: pytest.CaptureFixture[str], code: int, match: str) -> None:
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert match in err, err


def test_label_checks_out_before_judging(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", make_rows(6))
    cache = tmp_path / "cache.sqlite"
    (tmp_path / "dir.jsonl").mkdir()
    outs = [*_bad_outs(tmp_path, "out.jsonl"), (tmp_path / "dir.jsonl", "--out is a folder")]
    for out, match in outs:
        code = main(["label", "--no-progress", "--input", str(corpus), "--out", str(out), "--cache", str(cache), "--judge", "rules"])
        _one_line(capsys, code, match)
        assert not cache.exists()  # nothing was judged


def test_refine_and_sample_gold_check_out_and_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_jsonl(tmp_path / "corpus.jsonl", make_rows(30))
    for out, match in [*_bad_outs(tmp_path, "run"), (tmp_path / "afile", "--out is a file")]:
        _one_line(capsys, main(["refine", "--input", str(corpus), "--out", str(out)]), match)
        _one_line(capsys, main(["refine", "--method", "confident", "--input", str(corpus), "--out", str(out)]), match)
    for out, match in _bad_outs(tmp_path, "gold.csv"):
        _one_line(capsys, main(["sample-gold", "--input", str(corpus), "--out", str(out)]), match)
    for n in ("-5", "0"):
        _one_line(capsys, main(["sample-gold", "--input", str(corpus), "--n", n, "--out", str(tmp_path / "g.csv")]),
                  f"setting '--n' is {n}; it must be >= 1")
        assert not (tmp_path / "g.csv").exists()


def test_reward_export_checks_out_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for out, match in [*_bad_outs(tmp_path, "reward"), (tmp_path / "afile", "--out is a file")]:
        _one_line(capsys, main(["reward", "export", "--from", str(tmp_path), "--out", str(out)]), match)


def test_align_checks_out_and_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for out, match in [*_bad_outs(tmp_path, "align"), (tmp_path / "afile", "--out is a file")]:
        _one_line(capsys, main(["align", "--reward", "rules", "--out", str(out)]), match)
    _one_line(capsys, main(["align", "--reward", "rules", "--out", str(tmp_path / "a"), "--steps", "-3"]),
              "setting 'steps' is -3; it must be >= 1")
    assert not (tmp_path / "a").exists()
