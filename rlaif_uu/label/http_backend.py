"""LLM judge over any OpenAI-compatible chat-completions server (vLLM, other servers, hosted APIs).

One request per row (``temperature=0``, ``max_tokens=1``, ``logprobs=True``,
``top_logprobs=20``), at most ``concurrency`` in flight. Score (log-odds of harm)::

    score = logsumexp_{t in T, norm(t) = unsafe} lp(t) - logsumexp_{t in T, norm(t) = safe} lp(t)

over the top-logprob tokens ``T`` of the first answer token, with ``norm(t)`` the stripped,
lowercased token text. When only one verdict word is among the top tokens, the other's
log-probability is bounded by the smallest top log-probability and that bound is used
(``meta["bound"] = True``). When neither appears (or the server gives no log-probabilities)
the text answer is parsed: the unsafe word -> ``+TEXT_SCORE``, the safe word ->
``-TEXT_SCORE``; anything else is an abstention (``Verdict(None, {"abstain": ...})``).

Retries (408/409/429/5xx, connection errors and timeouts, with exponential backoff that
honours ``Retry-After``) are the official ``openai`` client's. 401/403/404 are not retried
and stop the run with a :class:`~rlaif_uu.errors.UserError`; so does a server that stays
unreachable or failing after the retries, and one that answers 200 with something other than a
chat completion (an HTML page). A 400/422 (e.g. a row longer than the model's context), a 200
without choices and an empty answer are per-row abstentions with ``meta["error"]``; errors are
never cached (:func:`~rlaif_uu.label.cache.judge_rows`), so a rerun asks again.

The API key is read from the environment variable named by ``api_key_env`` and handed to
the client only: it is never part of the judge id, the cache key, a log line or a message.
The judge id (the cache key) carries the base URL without credentials.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import Verdict
from rlaif_uu.label.guard import MAX_NEW_TOKENS, marker_position, parse_guard_text
from rlaif_uu.label.templates import (
    DEFAULT_TEMPLATE,
    JudgeTemplate,
    check_template,
    conversation,
    render,
)

log = logging.getLogger(__name__)

TEXT_SCORE = 20.0
"""Score magnitude of a verdict parsed from the text (no usable log-probabilities)."""
NO_KEY = "EMPTY"
"""Sent when the key variable is unset (local servers such as vLLM accept any key)."""


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def public_url(url: str) -> str:
    """``url`` without credentials or a query string (safe to print)."""
    return re.sub(r"//[^/@]*@", "//", url).split("?", 1)[0]


def score_choice(choice: Any, unsafe_word: str, safe_word: str) -> Verdict:
    """Turn one chat-completion choice into a :class:`Verdict` (see the module docstring).

    Args:
        choice: ``response.choices[0]`` of the ``openai`` client.
        unsafe_word: the template's unsafe verdict word.
        safe_word: the template's safe verdict word.
    """
    text = (choice.message.content or "") if choice.message is not None else ""
    unsafe, safe = unsafe_word.strip().lower(), safe_word.strip().lower()
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if content:
        first = content[0]
        seen: dict[str, float] = {first.token: first.logprob}
        for top in first.top_logprobs or []:
            seen[top.token] = max(top.logprob, seen.get(top.token, -math.inf))
        lp_u = [lp for tok, lp in seen.items() if tok.strip().lower() == unsafe and lp > -math.inf]
        lp_s = [lp for tok, lp in seen.items() if tok.strip().lower() == safe and lp > -math.inf]
        if lp_u or lp_s:
            floor = min(seen.values())
            u = _logsumexp(lp_u) if lp_u else floor
            s = _logsumexp(lp_s) if lp_s else floor
            mass = math.exp(_logsumexp(lp_u + lp_s))
            meta: dict[str, Any] = {"verdict_mass": round(mass, 6)}
            if not (lp_u and lp_s):
                meta["bound"] = True
            return Verdict(u - s, meta)
    match = re.match(r"\s*([^\W\d_]+)", text.lower())
    word = match.group(1) if match else ""
    if word == unsafe:
        return Verdict(TEXT_SCORE, {"parsed": "text"})
    if word == safe:
        return Verdict(-TEXT_SCORE, {"parsed": "text"})
    return Verdict(None, {"abstain": "unparseable", "text": text[:40]})


class OpenAIJudge:
    """A judge served by an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the served model name.
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1``.
        template: the judge template.
        judge_responses: judge (prompt, response) pairs (True) or prompts alone.
        threshold: label = score > threshold.
        api_key_env: name of the environment variable holding the API key.
        timeout: seconds per request (each retry gets its own).
        max_retries: retries of the ``openai`` client for retryable failures.
        concurrency: requests in flight at most.
        top_logprobs: how many alternatives of the answer token to ask for.
        logprobs: ask for log-probabilities (False: parse the text only, for servers that
            refuse ``logprobs``).
        max_field_chars: prompt and response are each cut to this many characters.
        name: judge name in the cache key (default: ``model``).

    Raises:
        UserError: a template that does not fit ``judge_responses``, or bad settings.
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        template: JudgeTemplate = DEFAULT_TEMPLATE,
        *,
        judge_responses: bool = True,
        threshold: float = 0.0,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 3,
        concurrency: int = 8,
        top_logprobs: int = 20,
        logprobs: bool = True,
        max_field_chars: int = 8000,
        name: str | None = None,
    ) -> None:
        import openai

        check_template(template, judge_responses)
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise UserError("openai judge: concurrency must be >= 1, max_retries >= 0 and timeout > 0")
        if not model or not base_url:
            raise UserError("openai judge: pass both model and base_url (e.g. http://127.0.0.1:8000/v1)")
        self.model, self.template, self.judge_responses, self.threshold = model, template, judge_responses, threshold
        self.base_url, self.api_key_env, self.concurrency = base_url, api_key_env, concurrency
        self.top_logprobs, self.logprobs, self.max_field_chars = top_logprobs, logprobs, max_field_chars
        self.name = name or model
        self.key_set = bool(os.environ.get(api_key_env))
        if not self.key_set:
            log.info("$%s is not set; sending no real API key (fine for a local server)", api_key_env)
        self._client = openai.OpenAI(
            base_url=base_url, api_key=os.environ.get(api_key_env) or NO_KEY, timeout=timeout, max_retries=max_retries
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai-judge")

    def __repr__(self) -> str:
        return f"OpenAIJudge(model={self.model!r}, base_url={public_url(self.base_url)!r}, api_key_env={self.api_key_env!r})"

    @property
    def judge_id(self) -> str:
        """``openai:<name>@<base URL>``: two servers may serve different weights under one name, so the URL is part of
        the cache key. Credentials and the query string are left out (a query adds a hash of itself); never the key."""
        url = self.base_url.rstrip("/")
        query = f"?{hashlib.sha256(url.encode()).hexdigest()[:8]}" if "?" in url else ""
        return f"openai:{self.name}@{public_url(url)}{query}"

    @property
    def template_key(self) -> str:
        """The template part of the cache key (see :attr:`JudgeTemplate.key`)."""
        return self.template.key + ("" if self.judge_responses else ":prompt-only") + ("" if self.logprobs else ":text")

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.max_field_chars else text[: self.max_field_chars] + " [...]"

    def messages(self, prompt: str, response: str) -> list[dict[str, str]]:
        """The chat messages sent for one row (a raw guard template: the plain conversation, which the served
        guard model's own chat template turns into its classifier prompt)."""
        if self.template.raw:
            return conversation(self._cut(prompt), self._cut(response) if self.judge_responses else None)
        return render(self.template, self._cut(prompt), self._cut(response) if self.judge_responses else None)

    def _one(self, prompt: str, response: str) -> Verdict:
        import openai

        kwargs: dict[str, Any] = {"logprobs": True, "top_logprobs": self.top_logprobs} if self.logprobs else {}
        max_tokens = 1
        if self.template.verdict_after:  # the verdict comes later in the answer (WildGuard)

            max_tokens = MAX_NEW_TOKENS
        try:
            out = self._client.chat.completions.create(
                model=self.model, messages=self.messages(prompt, response), temperature=0, max_tokens=max_tokens, **kwargs  # type: ignore[arg-type]
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            how = f"the API key in ${self.api_key_env} was rejected" if self.key_set else f"${self.api_key_env} is not set"
            raise UserError(
                f"{public_url(self.base_url)}: {how} (HTTP {exc.status_code}); set ${self.api_key_env} to a valid key"
            ) from None
        except openai.NotFoundError:
            raise UserError(
                f"{public_url(self.base_url)}: model '{self.model}' or the chat-completions endpoint was not found (HTTP 404); "
                "check --judge model=... and base_url (it usually ends in /v1)"
            ) from None
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            return Verdict(None, {"abstain": "error", "error": f"HTTP {exc.status_code}: {self._redact(str(exc))[:200]}"})
        except openai.APIStatusError as exc:
            raise UserError(
                f"{public_url(self.base_url)}: server error HTTP {exc.status_code} after {self._client.max_retries} retries; "
                "verdicts so far are cached, rerun to resume"
            ) from None
        except openai.APIConnectionError as exc:
            what = "timed out" if isinstance(exc, openai.APITimeoutError) else "unreachable"
            raise UserError(
                f"{public_url(self.base_url)}: server {what} after {self._client.max_retries} retries; "
                "check base_url and that the server is running (verdicts so far are cached, rerun to resume)"
            ) from None
        if isinstance(out, str) or not hasattr(out, "choices"):
            body = " ".join(str(out).split())[:60]
            raise UserError(
                f"{public_url(self.base_url)}: answered HTTP 200 with a body that is not a chat completion ({body!r}); "
                "base_url points at a web page or proxy, not an OpenAI-compatible API: check it (it usually ends in /v1)"
            )
        if not out.choices:  # a server fault, not the judge's answer: counted as an error and never cached
            return Verdict(None, {"abstain": "error", "error": "HTTP 200 without choices"})
        message = out.choices[0].message
        if not (message is not None and message.content) and not getattr(out.choices[0].logprobs, "content", None):
            return Verdict(None, {"abstain": "error", "error": "HTTP 200 with an empty answer"})
        if self.template.verdict_after:

            return score_chat_answer(out.choices[0], self.template)
        return score_choice(out.choices[0], self.template.unsafe_word, self.template.safe_word)

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env)
        return text.replace(key, "***") if key else text

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Verdict]:
        """Judge rows, ``concurrency`` requests at a time.

        Raises:
            UserError: bad key, unknown model/URL, server unreachable or failing after retries
                (requests not yet started are cancelled).
        """
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses differ in length")
        futures: list[Future[Verdict]] = [self._pool.submit(self._one, p, r) for p, r in zip(prompts, responses)]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            # requests still retrying would keep going (and logging) after the error is printed: stop them now
            self.close()
            raise

    def close(self) -> None:
        """Stop the worker threads and close the HTTP client."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def score_chat_answer(choice: Any, template: JudgeTemplate) -> Any:
    """A chat-completion choice of a ``verdict_after`` template as a :class:`Verdict` (the http backend).

    The log-probabilities of the token after the marker decide, as :func:`rlaif_uu.label.http_backend.score_choice`
    does for a first token; without them the parsed text (``±TEXT_SCORE``); the parsed answer lines go into the meta.
    """
    from types import SimpleNamespace

    text = (choice.message.content or "") if choice.message is not None else ""
    label, meta = parse_guard_text(template, text)
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    k = marker_position([c.token for c in content], template.verdict_after)
    if k is not None and k < len(content):
        shifted = SimpleNamespace(message=SimpleNamespace(content=""), logprobs=SimpleNamespace(content=content[k:]))
        verdict = score_choice(shifted, template.unsafe_word, template.safe_word)
        if verdict.score is not None:
            return Verdict(verdict.score, verdict.meta | meta)
    if label is not None:
        return Verdict(TEXT_SCORE if label else -TEXT_SCORE, meta | {"parsed": "text"})
    return Verdict(None, meta | {"abstain": "unparseable", "text": text[:80]})
