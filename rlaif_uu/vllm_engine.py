"""The vLLM offline engine (``vllm.LLM``) options and start-up shared by the ``vllm`` judge and the ``vllm`` eval backend.

Both take the same engine options (:class:`EngineOptions`: ``--judge vllm:dtype=float32,...`` for
the judge, ``generation.dtype=float32 ...`` for ``rlaif-uu eval``) and start the engine through
:func:`start_engine`, so they behave alike:

* ``kv_cache_gb`` becomes ``kv_cache_memory_bytes``. On CPU an unset ``kv_cache_gb`` means 1 GiB
  unless ``$VLLM_CPU_KVCACHE_SPACE`` is set (vLLM's own variable wins then); on a GPU an unset
  ``kv_cache_gb`` leaves the size to ``gpu_memory_utilization`` as in vLLM.
* ``threads`` (CPU only) binds the engine to cores ``0..threads-1`` via ``$VLLM_CPU_OMP_THREADS_BIND``.
* ``enforce_eager`` skips ``torch.compile`` and CUDA graphs: a much faster start on CPU, slower
  decoding on a GPU, hence off by default.

Nothing here imports vLLM at module import time.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlaif_uu.errors import UserError

log = logging.getLogger(__name__)

DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
"""The weight dtypes ``vllm.LLM`` accepts."""


@dataclass(frozen=True)
class EngineOptions:
    """Options of one ``vllm.LLM`` engine (``None``: vLLM's default, except the CPU KV cache: module docstring).

    Attributes:
        max_model_len: context length in tokens (default: the model's).
        dtype: weights dtype, one of :data:`DTYPES`.
        seed: the engine's seed.
        gpu_memory_utilization: share of GPU memory vLLM may take, in (0, 1].
        kv_cache_gb: KV cache size in GiB (> 0).
        threads: CPU only: cores the engine binds to (>= 1).
        enforce_eager: skip ``torch.compile`` / CUDA graphs.
    """

    max_model_len: int | None = None
    dtype: str = "auto"
    seed: int = 0
    gpu_memory_utilization: float | None = None
    kv_cache_gb: float | None = None
    threads: int | None = None
    enforce_eager: bool = False

    @classmethod
    def from_config(cls, cfg: Any) -> EngineOptions:
        """The options read from the same-named attributes of a config (``JudgeConfig``, ``GenerationConfig``)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})

    def check(self, prefix: str) -> None:
        """Raise a one-line :class:`UserError` naming the first bad option as ``{prefix}{field}``.

        Args:
            prefix: how the options are addressed, e.g. ``"generation."`` or ``"vllm judge: "``.
        """
        problems = [
            ("max_model_len", self.max_model_len is not None and self.max_model_len < 1, "must be >= 1"),
            ("dtype", self.dtype not in DTYPES, f"must be one of {', '.join(DTYPES)}"),
            ("gpu_memory_utilization", self.gpu_memory_utilization is not None and not 0 < self.gpu_memory_utilization <= 1,
             "must be in (0, 1]"),
            ("kv_cache_gb", self.kv_cache_gb is not None and self.kv_cache_gb <= 0, "must be > 0"),
            ("threads", self.threads is not None and self.threads < 1, "must be >= 1"),
        ]
        for name, bad, rule in problems:
            if bad:
                raise UserError(f"{prefix}{name} {rule} (got {getattr(self, name)!r})")


def engine_kwargs(model_path: str, opts: EngineOptions, *, on_cpu: bool, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.LLM`` for ``model_path`` (pure: reads ``env``, default ``os.environ``).

    Args:
        model_path: HF folder or hub id.
        opts: the engine options.
        on_cpu: the platform is vLLM's CPU backend (the 1 GiB KV-cache default applies).
        env: the environment to read ``VLLM_CPU_KVCACHE_SPACE`` from.
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    kwargs: dict[str, Any] = {"model": model_path, "dtype": opts.dtype, "seed": opts.seed, "enforce_eager": opts.enforce_eager,
                              "max_model_len": opts.max_model_len, "trust_remote_code": False, "disable_log_stats": True}
    if opts.gpu_memory_utilization is not None:
        kwargs["gpu_memory_utilization"] = opts.gpu_memory_utilization
    kv_gb = opts.kv_cache_gb
    if kv_gb is None and on_cpu and not environ.get("VLLM_CPU_KVCACHE_SPACE"):
        kv_gb = 1.0
    if kv_gb is not None:
        kwargs["kv_cache_memory_bytes"] = int(kv_gb * 2**30)
    return kwargs


def cpu_thread_binding(threads: int) -> str:
    """``$VLLM_CPU_OMP_THREADS_BIND`` for ``threads`` cores (``0`` or ``0-N``)."""
    return f"0-{threads - 1}" if threads > 1 else "0"


def start_engine(model_path: str, opts: EngineOptions, what: str) -> Any:
    """Start a ``vllm.LLM`` engine (a minute or more on CPU).

    Sets ``$VLLM_LOGGING_LEVEL`` to WARNING unless set (before vLLM is imported) and, on CPU
    with ``threads``, ``$VLLM_CPU_OMP_THREADS_BIND``.

    Args:
        model_path: HF folder or hub id.
        opts: the engine options (checked by the caller with :meth:`EngineOptions.check`).
        what: who starts it and for which model, for messages (``"vllm judge ... 'smollm2'"``).

    Raises:
        UserError: the engine cannot start (bad folder or config, or its process died while starting).
    """
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines drown the progress bars
    from vllm import LLM
    from vllm.platforms import current_platform

    on_cpu = bool(current_platform.is_cpu())
    if on_cpu and opts.threads is not None:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = cpu_thread_binding(opts.threads)
    elif opts.threads is not None:
        log.warning("%s: threads=%d only applies to vLLM on CPU; ignored", what, opts.threads)
    start = time.monotonic()
    log.info("starting the vLLM engine: %s (model load, compile and KV cache: a minute or more on CPU)", what)
    try:
        llm = LLM(**engine_kwargs(model_path, opts, on_cpu=on_cpu))
    except (OSError, ValueError, RuntimeError) as exc:  # bad folder/config, or the engine process died while starting
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"{what}: cannot start the engine: {first}") from None
    log.info("vLLM engine ready in %.0f s", time.monotonic() - start)
    return llm


def shutdown_engine(llm: Any) -> None:
    """Shut an engine down so that its worker processes exit (no-op for ``None``)."""
    if llm is None:
        return
    core = getattr(llm.llm_engine, "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
