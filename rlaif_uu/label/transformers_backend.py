"""Local LLM judge over ``AutoModelForCausalLM``: one batched forward pass per batch, no sampling.

Score (log-odds of harm, higher = more harmful)::

    score = logsumexp_{t in U} log p(t | chat) - logsumexp_{t in S} log p(t | chat)

where ``p`` is the next-token distribution at the answer position (right after the chat
template's generation prompt), ``U`` the first tokens of the unsafe verdict word and ``S``
those of the safe word, each over the spellings ``word``, `` word``, ``Word`` and `` Word``
(for Qwen2.5, ``unsafe``/``safe`` are single tokens, with a distinct token for each
spelling). The label is ``score > threshold``. ``verdict_mass`` (the probability on
``U ∪ S``) is kept as a diagnostic: a judge that puts little mass there is not following
the answer format.

Batches are left-padded; position ids are computed from the attention mask so a
row's score does not depend on its batch mates. The key/value states of the template's
fixed head (chat header + system text + the user text before ``{prompt}``) are computed
once and reused by every batch (``prefix_cache=True``): with the default template on
the corpus this halves the tokens each batch runs through the model. The padding then
sits between the shared head and each row's own tokens; the attention mask hides it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rlaif_uu.assets import QWEN_JUDGE, resolve_model
from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import Verdict
from rlaif_uu.label.guard import MAX_NEW_TOKENS, marker_position, parse_guard_text
from rlaif_uu.label.http_backend import TEXT_SCORE
from rlaif_uu.label.templates import DEFAULT_TEMPLATE, JudgeTemplate, check_template, render, render_raw

if TYPE_CHECKING:  # torch loads on the first forward pass: a fully cached rerun never imports it
    import torch

log = logging.getLogger(__name__)


def verdict_token_ids(tokenizer: Any, word: str) -> list[int]:
    """First token id of each spelling of ``word`` (as is, capitalised, with a leading space).

    A spelling whose first token is bare whitespace (a tokenizer that splits off the space)
    is skipped: that token says nothing about the verdict.
    """
    ids: list[int] = []
    for spelling in dict.fromkeys((word, word.capitalize(), word.lower())):
        for text in (spelling, " " + spelling):
            toks = tokenizer.encode(text, add_special_tokens=False)
            if toks and not tokenizer.decode(toks[:1]).strip():
                continue
            if toks and toks[0] not in ids:
                ids.append(int(toks[0]))
    return ids


def verdict_id_pair(tokenizer: Any, template: Any, name: str) -> tuple[list[int], list[int]]:
    """The (unsafe, safe) verdict token ids of ``template`` under ``tokenizer``.

    Raises:
        UserError: the tokenizer has no chat template, or the two verdict words share a first token.
    """
    if not template.raw and not getattr(tokenizer, "chat_template", None):
        raise UserError(f"the tokenizer of '{name}' has no chat template; an instruction-tuned model is needed to judge")
    unsafe_ids = verdict_token_ids(tokenizer, template.unsafe_word)
    safe_ids = verdict_token_ids(tokenizer, template.safe_word)
    if set(unsafe_ids) & set(safe_ids):
        raise UserError(
            f"verdict words '{template.unsafe_word}'/'{template.safe_word}' share a first token under the "
            f"tokenizer of '{name}'; choose verdict words that start differently"
        )
    return unsafe_ids, safe_ids


class TransformersJudge:
    """A batched local judge.

    Args:
        model: asset alias (default: the offline Qwen2.5-Coder-1.5B judge), local folder,
            ``.gguf`` file or hub id; resolved with :func:`rlaif_uu.assets.resolve_model`.
        template: the judge template.
        judge_responses: judge (prompt, response) pairs (True) or prompts alone.
        threshold: label = score > threshold.
        max_field_tokens: prompt and response are each cut to this many tokens.
        dtype: model weights dtype (fp32 on CPU; GGUF weights are dequantized anyway).
        model_obj: an already loaded model (then ``tokenizer_obj`` is required and
            ``model`` is only used as the judge's name).
        tokenizer_obj: an already loaded tokenizer with a chat template.
        prefix_cache: reuse the key/value states of the template's fixed head.

    The model is loaded on first use (a fully cached rerun never loads it); judges built
    for the same model and dtype share one loaded copy.

    Raises:
        UserError: unknown model, a tokenizer without a chat template, verdict words whose
            first tokens collide (at load), or a template that does not fit ``judge_responses``.
    """

    def __init__(
        self,
        model: str = QWEN_JUDGE,
        template: JudgeTemplate = DEFAULT_TEMPLATE,
        *,
        judge_responses: bool = True,
        threshold: float = 0.0,
        max_field_tokens: int = 512,
        dtype: torch.dtype | None = None,
        model_obj: Any | None = None,
        tokenizer_obj: Any | None = None,
        prefix_cache: bool = True,
    ) -> None:
        check_template(template, judge_responses)
        self.template, self.judge_responses, self.threshold = template, judge_responses, threshold
        self.max_field_tokens = max_field_tokens
        self.name, self.prefix_cache = model, prefix_cache
        self._prefix: tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        self._model: Any | None = None
        self._tokenizer: Any | None = None
        self._verdict_ids: tuple[list[int], list[int]] = ([], [])
        if model_obj is None:
            self.ref, self.dtype = resolve_model(model), dtype  # fail fast on a bad path; load on first use (fp32 default)
        else:
            if tokenizer_obj is None:
                raise UserError("TransformersJudge: pass tokenizer_obj together with model_obj")
            self._setup(model_obj, tokenizer_obj)

    def _setup(self, model: Any, tokenizer: Any) -> None:
        """Check the tokenizer and find the verdict token ids."""
        unsafe_ids, safe_ids = verdict_id_pair(tokenizer, self.template, self.name)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._model, self._tokenizer = model.eval(), tokenizer
        self._verdict_ids = (unsafe_ids, safe_ids)

    @property
    def unsafe_ids(self) -> list[int]:
        """Token ids whose probability counts for the unsafe verdict (loads the model if needed)."""
        _ = self.model
        return self._verdict_ids[0]

    @property
    def safe_ids(self) -> list[int]:
        """Token ids whose probability counts for the safe verdict (loads the model if needed)."""
        _ = self.model
        return self._verdict_ids[1]

    @property
    def model(self) -> Any:
        """The causal LM, loaded on first use (judges of the same model share one copy)."""
        if self._model is None:
            self._setup(*_load(str(self.ref), self.ref.path, self.ref.gguf_file, self.dtype))
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer, loaded with the model on first use."""
        if self._tokenizer is None:
            _ = self.model
        return self._tokenizer

    @property
    def judge_id(self) -> str:
        """Identifier of this judge in the cache and the output (model name; template kept apart)."""
        return f"transformers:{self.name}"

    @property
    def template_key(self) -> str:
        """The template part of the cache key (see :attr:`JudgeTemplate.key`)."""
        return self.template.key + ("" if self.judge_responses else ":prompt-only")

    def _truncate(self, text: str) -> str:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= self.max_field_tokens:
            return text
        return self.tokenizer.decode(ids[: self.max_field_tokens]) + " [...]"

    def chat_text(self, prompt: str, response: str) -> str:
        """The exact text fed to the model for one row (chat template + generation prompt; a raw template as is)."""
        if self.template.raw:
            return render_raw(self.template, self._truncate(prompt), self._truncate(response) if self.judge_responses else None)
        messages = render(self.template, self._truncate(prompt), self._truncate(response) if self.judge_responses else None)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> list[Verdict]:
        """Judge one batch (one forward pass).

        Args:
            prompts: user turns.
            responses: model turns (ignored for prompt-only judging).

        Returns:
            One :class:`Verdict` per row; ``meta`` holds ``verdict_mass``.
        """
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses differ in length")
        if not prompts:
            return []
        import torch

        texts = [self.chat_text(p, r) for p, r in zip(prompts, responses)]
        if self.template.verdict_after:  # the verdict comes later in the answer (WildGuard): generate, then score there

            return generate_verdicts(self.model, self.tokenizer, texts, self.template, self.unsafe_ids, self.safe_ids)
        ids = [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]
        with torch.inference_mode():
            head, head_kv = self._head() if self.prefix_cache else ([], [])
            shared = min([_common_prefix(head, row) for row in ids] + [min(len(row) for row in ids) - 1])
            logits = self._forward([row[shared:] for row in ids], shared, head_kv)
        logp = torch.log_softmax(logits.float(), dim=-1)
        lp_unsafe = torch.logsumexp(logp[:, self.unsafe_ids], dim=-1)
        lp_safe = torch.logsumexp(logp[:, self.safe_ids], dim=-1)
        scores = (lp_unsafe - lp_safe).tolist()
        mass = torch.logaddexp(lp_unsafe, lp_safe).exp().tolist()
        return [Verdict(score=s, meta={"verdict_mass": round(m, 6)}) for s, m in zip(scores, mass)]

    def _head(self) -> tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Token ids of the template's fixed head and their key/value states (computed once)."""
        if self._prefix is None:
            a = self.tokenizer.encode(self.chat_text("a", "a"), add_special_tokens=False)
            b = self.tokenizer.encode(self.chat_text("b", "b"), add_special_tokens=False)
            head = a[: _common_prefix(a, b)]
            kv: list[tuple[torch.Tensor, torch.Tensor]] = []
            import torch

            if head:
                device = next(self.model.parameters()).device
                with torch.inference_mode():
                    out = self.model(input_ids=torch.tensor([head], device=device), use_cache=True, logits_to_keep=1)
                kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            self._prefix = (head, kv)
        return self._prefix

    def _forward(self, rows: list[list[int]], shared: int, head_kv: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Next-token logits after each row; ``rows`` continue the first ``shared`` head tokens."""
        import torch
        from transformers import DynamicCache

        device = next(self.model.parameters()).device
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        positions = shared + (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {}
        if shared > 0:
            n = len(rows)
            kwargs["past_key_values"] = DynamicCache(
                [(k[:, :, :shared].expand(n, -1, -1, -1), v[:, :, :shared].expand(n, -1, -1, -1)) for k, v in head_kv]
            )
            mask = torch.cat([torch.ones(n, shared, dtype=mask.dtype, device=device), mask], dim=1)
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=1, use_cache=shared > 0, **kwargs)
        return out.logits[:, -1, :]

    def label(self, score: float) -> int:
        """1 (harmful) when ``score > threshold``, else 0."""
        return int(score > self.threshold)


@functools.lru_cache(maxsize=1)
def _load(name: str, path: str, gguf_file: str | None, dtype: torch.dtype | None) -> tuple[Any, Any]:
    """Load (model, tokenizer); the last one loaded is kept so judges of one model share it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    start = time.monotonic()
    log.info("loading judge %s (a GGUF is dequantized on load; the Qwen judge takes ~60 s)", name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False, **kwargs)
        net = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, trust_remote_code=False, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load judge model '{name}': {exc}") from None
    log.info("judge loaded in %.0f s", time.monotonic() - start)
    return net, tokenizer


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token id lists."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def generate_verdicts(model: Any, tokenizer: Any, texts: Sequence[str], template: JudgeTemplate,
                      unsafe_ids: Sequence[int], safe_ids: Sequence[int], max_new_tokens: int = MAX_NEW_TOKENS) -> list[Any]:
    """Greedy answers of a causal LM, scored at the token after ``template.verdict_after``.

    Score: ``logsumexp lp(unsafe ids) - logsumexp lp(safe ids)`` of the next-token distribution right after the
    marker in the model's own answer (the transformers backend's score, moved to that position); the parsed
    answer lines go into the meta. No marker in the answer: the text verdict (``±TEXT_SCORE``) or an abstention.
    """
    import torch

    device = next(model.parameters()).device
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    finally:
        tokenizer.padding_side = side
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
    new = out.sequences[:, batch["input_ids"].shape[1]:]
    verdicts = []
    for row in range(len(texts)):
        ids = [int(t) for t in new[row] if int(t) != tokenizer.pad_token_id]
        text = tokenizer.decode(ids, skip_special_tokens=True)
        label, meta = parse_guard_text(template, text)
        meta["answer"] = text[:200]
        k = marker_position([tokenizer.decode([t]) for t in ids], template.verdict_after)
        if k is not None and k < len(out.scores):
            logp = torch.log_softmax(out.scores[k][row].float(), dim=-1)
            u, s = torch.logsumexp(logp[list(unsafe_ids)], -1), torch.logsumexp(logp[list(safe_ids)], -1)
            meta["verdict_mass"] = round(float(torch.logaddexp(u, s).exp()), 6)
            verdicts.append(Verdict(float(u - s), meta))
        elif label is not None:
            verdicts.append(Verdict(TEXT_SCORE if label else -TEXT_SCORE, meta | {"parsed": "text"}))
        else:
            verdicts.append(Verdict(None, meta | {"abstain": "unparseable"}))
    return verdicts
