"""Settings of the label stage: one judge (:class:`JudgeConfig`), the stage (:class:`LabelConfig`), ``--judge`` specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from rlaif_uu.assets import QWEN_JUDGE, get_asset
from rlaif_uu.config import Tagged, build_tagged
from rlaif_uu.errors import UserError

KINDS = ("transformers", "vllm", "openai", "embedding", "rules", "request")
AGGREGATES = ("majority", "mean")
OUT_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".parquet", ".pq")


@dataclass
class BaseJudgeConfig:
    """What every judge kind reads (``None`` = the kind's default)."""

    kind: str = "transformers"
    name: str | None = None  # column prefix (default: the kind)
    threshold: float | None = None  # label = score > threshold (default 0)
    harmful_fraction: float | None = None  # instead of threshold: label this fraction harmful
    batch_size: int | None = None  # rows per judge call and cache commit


@dataclass
class RulesJudgeConfig(BaseJudgeConfig):
    """``rules``: refusal patterns + harm keywords."""

    kind: str = "rules"


@dataclass
class EmbeddingJudgeConfig(BaseJudgeConfig):
    """``embedding``: MiniLM similarity to harmful vs safe anchor descriptions."""

    kind: str = "embedding"
    model: str | None = None  # sentence encoder: alias, folder or hub id (default all-MiniLM-L6-v2)
    text: str = "response"  # response | pair


@dataclass
class RequestJudgeConfig(BaseJudgeConfig):
    """``request``: a non-refusal to a harmful request is harmful (request-harm x refusal detector)."""

    kind: str = "request"
    model: str | None = None  # sentence encoder of the request-harm probe (default all-MiniLM-L6-v2)
    refusal: str = "rules"  # refusal detector: rules | embedding (MiniLM only, independent of the rules) | either
    content: str = "none"  # none | rules (a harm keyword/generalisation in a non-refusal also counts)


@dataclass
class LLMJudgeConfig(BaseJudgeConfig):
    """What the LLM judge kinds share."""

    model: str | None = None  # transformers/vllm: alias, folder or hub id; openai: the served model name
    template: str | None = None  # built-in template name or YAML/JSON file


@dataclass
class TransformersJudgeConfig(LLMJudgeConfig):
    """``transformers``: a local causal LM read through its next-token log-probabilities."""

    kind: str = "transformers"
    max_field_tokens: int = 512  # prompt and response are each cut to this many tokens


@dataclass
class VllmJudgeConfig(LLMJudgeConfig):
    """``vllm``: the same templates through a vLLM engine."""

    kind: str = "vllm"
    max_field_tokens: int = 512
    max_model_len: int | None = None  # context length (default: the model's)
    dtype: str = "auto"  # weights dtype
    seed: int = 0  # engine seed
    gpu_memory_utilization: float | None = None  # share of GPU memory (default: vLLM's)
    kv_cache_gb: float | None = None  # KV cache GiB (CPU default: $VLLM_CPU_KVCACHE_SPACE or 1)
    threads: int | None = None  # on CPU: cores the engine binds to
    enforce_eager: bool = False  # skip torch.compile (faster start)


@dataclass
class OpenAIJudgeConfig(LLMJudgeConfig):
    """``openai``: any OpenAI-compatible server (vLLM, TGI, llama.cpp, a hosted API)."""

    kind: str = "openai"
    base_url: str | None = None  # API root, e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # name of the variable holding the key
    concurrency: int = 8  # requests in flight
    timeout: float = 60.0  # seconds per request
    max_retries: int = 3
    logprobs: bool = True  # ask for log-probabilities


JUDGE_KINDS: dict[str, type] = {"transformers": TransformersJudgeConfig, "vllm": VllmJudgeConfig,
                                "openai": OpenAIJudgeConfig, "embedding": EmbeddingJudgeConfig,
                                "rules": RulesJudgeConfig, "request": RequestJudgeConfig}
KINDS = tuple(JUDGE_KINDS)
JudgeConfig = (TransformersJudgeConfig | VllmJudgeConfig | OpenAIJudgeConfig | EmbeddingJudgeConfig
               | RulesJudgeConfig | RequestJudgeConfig)
JUDGE_TAG = Tagged(JUDGE_KINDS, "transformers")


def judge_config(kind: str = "transformers", **settings: Any) -> JudgeConfig:
    """The config of one judge of ``kind`` (``judge_config("openai", model=..., base_url=...)``).

    Raises:
        UserError: an unknown kind, or a setting that kind does not read (named with the kinds that do).
    """
    return build_tagged(JUDGE_TAG, {"kind": kind, **settings}, "judge")  # type: ignore[no-any-return]


def default_judges() -> list[JudgeConfig]:
    """The judges of ``label`` without ``--judge``: the ones the documented set-up installs (rules + MiniLM embedding)."""
    return [RulesJudgeConfig(), EmbeddingJudgeConfig()]


def default_judges_note() -> str:
    """What ``label`` says when it runs its default judges: which judge is better and how to get it."""
    get = "" if get_asset(QWEN_JUDGE).locate() else f"install it with `rlaif-uu assets --install {QWEN_JUDGE}` (1.1 GB), then "
    return (f"note: no --judge given, so judging with the rules and embedding judges (installed by the set-up); the "
            f"{QWEN_JUDGE} LLM judge labels better: {get}pass --judge rules --judge transformers:model={QWEN_JUDGE}")


@dataclass
class LabelConfig:
    """``rlaif-uu label`` settings."""

    input: str = MISSING
    out: str = MISSING
    judges: list[Any] = field(default_factory=default_judges, metadata={"tagged": JUDGE_TAG})  # JudgeConfig items
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
        built = judge_config(**out)
    except UserError as exc:
        raise UserError(f"--judge {spec!r}: {exc}") from None
    return {k: getattr(built, k) for k in out}
