"""Completions for eval prompts through three backends, each with the model's chat template.

* ``transformers``: batched ``generate`` with left padding; greedy when ``temperature == 0``,
  else sampling seeded per batch (``seed`` + the batch's first prompt hash), so a sampled
  run is reproducible for the same prompts and batch size. ``--model`` may be an asset
  alias, a local HF folder, a hub id or a LoRA adapter folder (``adapter_config.json``;
  the base model is loaded and the adapter merged with peft).
* ``vllm``: the offline ``vllm.LLM(...).chat`` engine (imported only when used), with the
  engine options of the ``vllm`` judge (``generation.dtype``, ``max_model_len``, ``kv_cache_gb``,
  ``threads``, ``enforce_eager``, ``gpu_memory_utilization``; :mod:`rlaif_uu.vllm_engine`). On CPU
  (``.venv-vllm``, ``bash scripts/setup_vllm.sh``) ``generation.enforce_eager=true`` starts the
  engine in about a minute instead of several, and the KV cache defaults to 1 GiB.
* ``openai``: any OpenAI-compatible ``/chat/completions`` server (vLLM, hosted APIs); the key
  comes from the environment variable named by ``api_key_env`` only.

The generation settings (:class:`GenerationConfig`) and the model's identity form the
cache key of :mod:`rlaif_uu.eval.cache`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from rlaif_uu.assets import from_pretrained_kwargs, resolve_model
from rlaif_uu.config_ranges import check_choice
from rlaif_uu.errors import UserError
from rlaif_uu.vllm_engine import EngineOptions, shutdown_engine, start_engine

log = logging.getLogger(__name__)
BACKENDS = ("transformers", "vllm", "openai")
ENGINE_FIELDS = ("dtype", "max_model_len", "gpu_memory_utilization", "kv_cache_gb", "threads", "enforce_eager")
"""The vllm engine options of :class:`GenerationConfig` (``seed`` is shared with the other backends)."""


@dataclass
class GenerationConfig:
    """How completions are generated (all recorded in the report)."""

    backend: str = "transformers"  # transformers | vllm | openai
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 128
    seed: int = 0
    batch_size: int = 16  # transformers: prompts per generate call; vllm/openai: per cache commit
    system_prompt: str | None = None  # optional system turn before each prompt
    base_url: str | None = None  # openai: API root, e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # openai: variable holding the key
    concurrency: int = 8  # openai: requests in flight
    timeout: float = 120.0  # openai: seconds per request
    max_retries: int = 3  # openai
    # vllm engine options (as `--judge vllm:...`; rlaif_uu.vllm_engine), None = vLLM's default:
    dtype: str = "auto"  # vllm: weights dtype (auto | float32 | bfloat16 | float16 ...); part of the cache key unless auto
    max_model_len: int | None = None  # vllm: context length in tokens (default: the model's)
    gpu_memory_utilization: float | None = None  # vllm on GPU: share of GPU memory the engine may take (0, 1]
    kv_cache_gb: float | None = None  # vllm: KV cache GiB (CPU default: $VLLM_CPU_KVCACHE_SPACE, else 1)
    threads: int | None = None  # vllm on CPU: cores the engine binds to, 0..threads-1 (torch threads: top-level `threads`)
    enforce_eager: bool = False  # vllm: skip torch.compile/CUDA graphs (much faster start on CPU; keep off on GPU)


class Generator(Protocol):
    """What the eval loop needs from a backend: prompts in, completions out (same order; ``None`` = the server gave none)."""

    def __call__(self, prompts: Sequence[str]) -> Sequence[str | None]: ...


def messages(prompt: str, system: str | None) -> list[dict[str, str]]:
    """The chat turns sent for one prompt."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]


def model_fingerprint(path: str) -> str:
    """Identity of a local model folder for the cache: names, sizes and mtimes of its files (a hub id is itself)."""
    folder = Path(path)
    if not folder.is_dir():
        return path
    stats = sorted((p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in folder.iterdir() if p.is_file())
    return f"{folder.resolve()}#{hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:12]}"


def settings_key(model_id: str, cfg: GenerationConfig) -> str:
    """Cache key of (model, settings that change the text): sha256, 16 hex."""
    used = {k: v for k, v in asdict(cfg).items() if k in ("backend", "temperature", "top_p", "max_new_tokens", "system_prompt")}
    if cfg.backend == "vllm" and cfg.dtype != "auto":  # float32 and bfloat16 weights write different text
        used["dtype"] = cfg.dtype
    if cfg.temperature > 0:
        used.update(seed=cfg.seed, batch_size=cfg.batch_size if cfg.backend == "transformers" else None)
    return hashlib.sha256(json.dumps([model_id, used], sort_keys=True).encode()).hexdigest()[:16]


def _adapter_base(path: str) -> str | None:
    """The base model named by a LoRA adapter folder's ``adapter_config.json`` (None: not an adapter)."""
    cfg = Path(path) / "adapter_config.json"
    if not cfg.is_file():
        return None
    try:
        return str(json.loads(cfg.read_text(encoding="utf-8"))["base_model_name_or_path"])
    except (ValueError, KeyError):
        raise UserError(f"{cfg}: not a valid adapter config (needs base_model_name_or_path)") from None


def model_identity(model: str, cfg: GenerationConfig) -> str:
    """The model's identity in the generation cache, found without loading it.

    A local folder is its resolved path plus a hash of its files' names, sizes and mtimes
    (retraining into the same folder changes it); a LoRA adapter adds its base model's; a
    hub id or served model name is itself.
    """
    if cfg.backend == "openai":  # two servers may serve different weights under one name
        from rlaif_uu.label.http_backend import public_url

        return f"openai:{model}@{public_url((cfg.base_url or '').rstrip('/'))}"

    ref = resolve_model(model)
    base = _adapter_base(ref.path)
    own = model_fingerprint(ref.path) + (f"/{ref.gguf_file}" if ref.gguf_file else "")
    return f"{model_identity(base, cfg)}+lora:{own}" if base else own


def _load_transformers(name: str) -> tuple[Any, Any]:
    """(model, tokenizer) for an alias, folder, hub id or LoRA adapter folder (merged)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer


    def load(ref: Any) -> Any:
        return AutoModelForCausalLM.from_pretrained(ref.path, dtype=torch.float32, trust_remote_code=False, **from_pretrained_kwargs(ref))

    ref = resolve_model(name)
    base_name = _adapter_base(ref.path)
    try:
        if base_name is not None:
            from peft import PeftModel

            base_ref = resolve_model(base_name)
            model = PeftModel.from_pretrained(load(base_ref), ref.path).merge_and_unload()
            tok_ref = ref if (Path(ref.path) / "tokenizer_config.json").is_file() else base_ref
        else:
            model, tok_ref = load(ref), ref
        tokenizer = AutoTokenizer.from_pretrained(tok_ref.path, trust_remote_code=False, **from_pretrained_kwargs(tok_ref))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load model '{name}': {str(exc).splitlines()[0]}") from None
    return model.eval(), tokenizer


class TransformersGenerator:
    """Batched local generation (see the module docstring).

    Args:
        model: alias, folder, hub id or LoRA adapter folder.
        cfg: generation settings.
        model_obj: an already loaded causal LM (then ``tokenizer_obj`` is required; ``model`` names it).
        tokenizer_obj: its tokenizer.

    Raises:
        UserError: the model cannot be loaded or its tokenizer has no chat template.
    """

    def __init__(self, model: str, cfg: GenerationConfig, model_obj: Any | None = None, tokenizer_obj: Any | None = None) -> None:
        if model_obj is not None:
            self.model, self.tokenizer = model_obj.eval(), tokenizer_obj
        else:
            self.model, self.tokenizer = _load_transformers(model)
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"the tokenizer of '{model}' has no chat template; evaluate an instruction-tuned (chat) model")
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"
        self.cfg = cfg

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        """Complete one batch (one ``generate`` call)."""
        import torch

        texts = [self.tokenizer.apply_chat_template(messages(p, self.cfg.system_prompt), tokenize=False, add_generation_prompt=True)
                 for p in prompts]
        enc = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(next(self.model.parameters()).device)
        kwargs: dict[str, Any] = {"do_sample": False}
        if self.cfg.temperature > 0:
            first = int(hashlib.sha256(prompts[0].encode()).hexdigest()[:8], 16)
            torch.manual_seed(self.cfg.seed + first)
            kwargs = {"do_sample": True, "temperature": self.cfg.temperature, "top_p": self.cfg.top_p}
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.cfg.max_new_tokens, pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        return self.tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


class VLLMGenerator:
    """The offline vLLM engine (imported only when this backend is used), started with the config's engine options.

    Args:
        model: asset alias, local HF folder or hub id (not a GGUF file or a LoRA adapter).
        cfg: generation settings, engine options included (:class:`~rlaif_uu.vllm_engine.EngineOptions`).

    Raises:
        UserError: vLLM is not installed (names the install), a bad engine option (names the field),
            a model that cannot be resolved or is not a full HF model, or an engine that fails to start.
    """

    def __init__(self, model: str, cfg: GenerationConfig) -> None:
        options = EngineOptions.from_config(cfg)
        options.check("generation.")
        try:
            import vllm
        except ImportError:
            raise UserError("the vllm backend needs vLLM: `pip install vllm` on a GPU machine, or `bash scripts/setup_vllm.sh` "
                            "and .venv-vllm/bin/rlaif-uu on CPU; or use --backend transformers") from None
        ref = resolve_model(model)
        if ref.gguf_file or _adapter_base(ref.path):
            raise UserError(f"'{model}' is a GGUF file or a LoRA adapter; the vllm backend needs a full HF folder or hub id "
                            "(merge the adapter first, or use --backend transformers)")
        self.cfg = cfg
        self._vllm = vllm
        self.llm: Any | None = start_engine(ref.path, options, f"vllm generation for '{model}'")
        if not getattr(self.llm.get_tokenizer(), "chat_template", None):
            self.close()
            raise UserError(f"the tokenizer of '{model}' has no chat template; evaluate an instruction-tuned (chat) model")

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        """Complete prompts with the engine's own batching."""
        if self.llm is None:
            raise RuntimeError("the vLLM engine is closed")
        params = self._vllm.SamplingParams(temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                           max_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        outs = self.llm.chat([messages(p, self.cfg.system_prompt) for p in prompts], params, use_tqdm=False)
        return [o.outputs[0].text for o in outs]

    def close(self) -> None:
        """Shut the engine down (its worker processes exit); idempotent."""
        shutdown_engine(self.llm)
        self.llm = None


class OpenAIGenerator:
    """Completions from an OpenAI-compatible server, ``concurrency`` requests at a time.

    Raises:
        UserError: no base_url, a rejected key, an unknown model, or a server that stays down.
    """

    def __init__(self, model: str, cfg: GenerationConfig) -> None:
        import openai

        if not cfg.base_url:
            raise UserError("the openai backend needs generation.base_url (e.g. --base-url http://127.0.0.1:8000/v1)")
        self.cfg, self.model = cfg, model
        self._client = openai.OpenAI(base_url=cfg.base_url, api_key=os.environ.get(cfg.api_key_env) or "EMPTY",
                                     timeout=cfg.timeout, max_retries=cfg.max_retries)
        self._pool = ThreadPoolExecutor(max_workers=max(1, cfg.concurrency), thread_name_prefix="eval-gen")

    def _one(self, prompt: str) -> str | None:
        """One completion; ``None`` when the server answered 200 without one (a fault, never cached)."""
        import openai

        url = self.cfg.base_url
        try:
            out = self._client.chat.completions.create(
                model=self.model, messages=messages(prompt, self.cfg.system_prompt),  # type: ignore[arg-type]
                temperature=self.cfg.temperature, top_p=self.cfg.top_p, max_tokens=self.cfg.max_new_tokens, seed=self.cfg.seed)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise UserError(f"{url}: HTTP {exc.status_code}, the key in ${self.cfg.api_key_env} was refused or is unset") from None
        except openai.NotFoundError:
            raise UserError(f"{url}: model '{self.model}' or the chat-completions endpoint was not found (HTTP 404)") from None
        except (openai.APIStatusError, openai.APIConnectionError) as exc:
            raise UserError(f"{url}: request failed after {self.cfg.max_retries} retries ({type(exc).__name__}); "
                            "completions so far are cached, rerun to resume") from None
        if isinstance(out, str) or not hasattr(out, "choices"):
            body = " ".join(str(out).split())[:60]
            raise UserError(f"{url}: answered HTTP 200 with a body that is not a chat completion ({body!r}); base_url points "
                            "at a web page or proxy, not an OpenAI-compatible API: check it (it usually ends in /v1)")
        text = out.choices[0].message.content if out.choices and out.choices[0].message is not None else None
        return text or None

    def __call__(self, prompts: Sequence[str]) -> list[str | None]:
        """Complete prompts concurrently (order kept); ``None`` for a prompt the server gave no completion."""
        return list(self._pool.map(self._one, prompts))

    def close(self) -> None:
        """Stop the worker threads and close the client."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def build_generator(model: str, cfg: GenerationConfig) -> Generator:
    """The backend named by ``cfg.backend`` for ``model``.

    Raises:
        UserError: an unknown backend or bad settings.
    """
    check_choice("generation backend", cfg.backend, BACKENDS)
    if cfg.max_new_tokens < 1 or cfg.temperature < 0 or not 0 < cfg.top_p <= 1 or cfg.batch_size < 1:
        raise UserError("generation: max_new_tokens and batch_size must be >= 1, temperature >= 0, 0 < top_p <= 1")
    if cfg.backend == "vllm":
        return VLLMGenerator(model, cfg)
    changed = [f for f in ENGINE_FIELDS if getattr(cfg, f) != getattr(EngineOptions(), f)]
    if changed:
        log.warning("generation.%s only applies to the vllm backend; ignored with backend %s", "/".join(changed), cfg.backend)
    if cfg.backend == "openai":
        return OpenAIGenerator(model, cfg)
    return TransformersGenerator(model, cfg)
