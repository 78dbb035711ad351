"""Settings of the label stage: one judge (:class:`JudgeConfig`), the stage (:class:`LabelConfig`), ``--judge`` specs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rlaif_uu.errors import UserError

KINDS = ("transformers", "vllm", "openai", "embedding", "rules", "request")
AGGREGATES = ("majority", "mean")
OUT_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".parquet", ".pq")


@dataclass
class JudgeConfig:
    """One judge of ``rlaif-uu label`` (``None`` = the kind's default)."""

    kind: str = "transformers"  # transformers | vllm | openai | embedding | rules | request
    name: str | None = None  # column prefix (default: the kind)
    model: str | None = None  # transformers/vllm/embedding/request: alias, folder or hub id; openai: served model name
    template: str | None = None  # built-in template name or YAML/JSON file (LLM judges)
    base_url: str | None = None  # openai: API root, e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: name of the variable holding the key
    threshold: float | None = None  # label = score > threshold (default 0)
    harmful_fraction: float | None = None  # instead of threshold: label this fraction harmful
    batch_size: int | None = None  # rows per judge call and cache commit
    concurrency: int = 8  # openai: requests in flight
    timeout: float = 60.0  # openai: seconds per request
    max_retries: int = 3  # openai
    logprobs: bool = True  # openai: ask for log-probabilities
    text: str = "response"  # embedding: response | pair
    refusal: str = "rules"  # request: refusal detector: rules | embedding (MiniLM only, independent of the rules) | either
    content: str = "none"  # request: none | rules (a harm keyword/generalisation in a non-refusal also counts)
    max_field_tokens: int = 512  # transformers, vllm
    max_model_len: int | None = None  # vllm: context length (default: the model's)
    dtype: str = "auto"  # vllm: weights dtype
    seed: int = 0  # vllm: engine seed
    gpu_memory_utilization: float | None = None  # vllm: share of GPU memory (default: vLLM's)
    kv_cache_gb: float | None = None  # vllm: KV cache GiB (CPU default: $VLLM_CPU_KVCACHE_SPACE or 1)
    threads: int | None = None  # vllm on CPU: cores the engine binds to
    enforce_eager: bool = False  # vllm: skip torch.compile (faster start)


_LLM = ("transformers", "vllm", "openai")
JUDGE_FIELDS: dict[str, tuple[str, ...]] = {  # fields that only some judge kinds read (the rest apply to every kind)
    "model": ("transformers", "vllm", "openai", "embedding", "request"),
    "template": _LLM,
    **dict.fromkeys(("base_url", "api_key_env", "concurrency", "timeout", "max_retries", "logprobs"), ("openai",)),
    "text": ("embedding",),
    "refusal": ("request",),
    "content": ("request",),
    "max_field_tokens": ("transformers", "vllm"),
    **dict.fromkeys(("max_model_len", "dtype", "seed", "gpu_memory_utilization", "kv_cache_gb", "threads",
                     "enforce_eager"), ("vllm",)),
}


def default_judges() -> list[JudgeConfig]:
    """The judges of ``label`` without ``--judge``: the ones the documented set-up installs (rules + MiniLM embedding)."""
    return [JudgeConfig(kind="rules"), JudgeConfig(kind="embedding")]


def default_judges_note() -> str:
    """What ``label`` says when it runs its default judges: which judge is better and how to get it."""
    from rlaif_uu.assets import QWEN_JUDGE, get_asset

    get = "" if get_asset(QWEN_JUDGE).locate() else f"install it with `rlaif-uu assets --install {QWEN_JUDGE}` (1.1 GB), then "
    return (f"note: no --judge given, so judging with the rules and embedding judges (installed by the set-up); the "
            f"{QWEN_JUDGE} LLM judge labels better: {get}pass --judge rules --judge transformers:model={QWEN_JUDGE}")


@dataclass
class LabelConfig:
    """``rlaif-uu label`` settings."""

    input: str = MISSING
    out: str = MISSING
    judges: list[JudgeConfig] = field(default_factory=lambda: default_judges())
    prompt_only: bool = False  # judge prompts alone (no response)
    aggregate: str = "majority"  # majority | mean
    cache: str | None = None  # verdict cache file (default: <asset cache>/judge-cache.sqlite, as eval/judge_corpus.py)
    no_cache: bool = False
    overwrite: bool = False
    progress: bool = True
    drop_unlabelled: bool = False  # drop rows every judge abstained on


def parse_judge_spec(spec: str) -> dict[str, Any]:
    """``KIND[:key=value,...]`` -> a :class:`JudgeConfig` mapping (values typed by the dataclass).

    Raises:
        UserError: unknown kind or key, or a value of the wrong type.
    """
    kind, _, rest = spec.partition(":")
    out: dict[str, Any] = {"kind": kind.strip()}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise UserError(f"--judge {spec!r}: '{item}' must look like key=value")
        out[key.strip()] = value.strip()
    try:
        typed = OmegaConf.merge(OmegaConf.structured(JudgeConfig), out)
    except OmegaConfBaseException as exc:
        msg = str(exc).splitlines()[0]
        if " not in " in msg:
            msg += " (keys: " + ", ".join(f.name for f in dataclasses.fields(JudgeConfig)) + ")"
        raise UserError(f"--judge {spec!r}: {msg}") from None
    return {k: v for k, v in OmegaConf.to_container(typed).items() if k in out}  # type: ignore[union-attr]
