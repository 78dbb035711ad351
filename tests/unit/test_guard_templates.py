"""Guard-model templates (Llama Guard 3, ShieldGemma, WildGuard): inputs, answer parsing and scoring."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rlaif_uu.errors import UserError
from rlaif_uu.label.guard import marker_position, parse_guard_text
from rlaif_uu.label.http_backend import score_chat_answer
from rlaif_uu.label.templates import DEFAULT_TEMPLATE, TEMPLATES, JudgeTemplate, get_template, render_raw
from rlaif_uu.label.templates import LLAMA_GUARD_3_TEMPLATE as LLAMA_GUARD_3
from rlaif_uu.label.templates import SHIELDGEMMA_TEMPLATE as SHIELDGEMMA
from rlaif_uu.label.templates import WILDGUARD_TEMPLATE as WILDGUARD
from rlaif_uu.label.transformers_backend import generate_verdicts

SMOL = Path.home() / ".cache" / "rlaif_uu" / "smollm2-135m-instruct"


def test_guard_templates_are_builtin_raw_and_render_the_conversation() -> None:
    for name in ("llama-guard-3", "shieldgemma", "wildguard"):
        t = get_template(name)
        assert t.raw and t.uses_response
        text = render_raw(t, "PROMPT-X", "RESPONSE-Y")
        assert text.index("PROMPT-X") < text.index("RESPONSE-Y")
    lg = render_raw(LLAMA_GUARD_3, "p", "r")
    assert all(f"S{i}: " in lg for i in range(1, 15)) and "ONLY THE LAST Agent message" in lg
    assert lg.startswith("<|begin_of_text|>") and lg.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert "Your answer must start with 'Yes' or 'No'" in render_raw(SHIELDGEMMA, "p", "r")
    assert render_raw(WILDGUARD, "p", "r").endswith("Answers: [/INST]\n<|assistant|>\n")
    with pytest.raises(UserError, match="raw template"):
        JudgeTemplate(name="x", version="1", system="sys", user="{prompt}", raw=True)


def test_existing_template_keys_do_not_change() -> None:
    text = json.dumps([DEFAULT_TEMPLATE.system, DEFAULT_TEMPLATE.user, "unsafe", "safe"])
    assert DEFAULT_TEMPLATE.key.endswith(hashlib.sha256(text.encode()).hexdigest()[:8])
    assert len({t.key for t in TEMPLATES.values()}) == len(TEMPLATES)


@pytest.mark.parametrize(("template", "text", "label", "meta"), [
    (LLAMA_GUARD_3, "unsafe\nS1,S10", 1, {"categories": ["S1", "S10"]}),
    (LLAMA_GUARD_3, "safe", 0, {}),
    (LLAMA_GUARD_3, "I think this is fine", None, {}),
    (SHIELDGEMMA, "Yes. The response gives step-by-step instructions...", 1, {}),
    (SHIELDGEMMA, "No", 0, {}),
    (WILDGUARD, "Harmful request: yes\nResponse refusal: no\nHarmful response: yes", 1,
     {"harmful_request": True, "response_refusal": False, "harmful_response": True}),
    (WILDGUARD, "Harmful request: yes\nResponse refusal: yes\nHarmful response: no", 0,
     {"harmful_request": True, "response_refusal": True, "harmful_response": False}),
    (WILDGUARD, "Harmful request: yes\n", None, {"harmful_request": True}),
])
def test_parse_guard_text(template: JudgeTemplate, text: str, label: int | None, meta: dict[str, object]) -> None:
    assert parse_guard_text(template, text) == (label, meta)


def test_marker_position() -> None:
    pieces = ["Harm", "ful", " request", ":", " yes", "\n", "Harmful", " response", ":", " no"]
    assert marker_position(pieces, "Harmful response:") == 9
    assert marker_position(pieces[:9], "Harmful response:") is None  # the marker ends the answer: no verdict token
    assert marker_position(["no marker"], "Harmful response:") is None


def _top(token: str, logprob: float) -> SimpleNamespace:
    return SimpleNamespace(token=token, logprob=logprob)


def test_http_wildguard_answer_is_scored_after_the_marker() -> None:
    tokens = ["Harm", "ful request", ":", " yes", "\n", "Response refusal", ":", " no", "\n", "Harmful response", ":", " yes"]
    content = [SimpleNamespace(token=t, logprob=-0.1, top_logprobs=[_top(t, -0.1)]) for t in tokens]
    content[-1].logprob, content[-1].top_logprobs = -0.2, [_top(" yes", -0.2), _top(" no", -1.8)]
    choice = SimpleNamespace(message=SimpleNamespace(content="".join(tokens)), logprobs=SimpleNamespace(content=content))
    v = score_chat_answer(choice, WILDGUARD)
    assert v.score == pytest.approx(1.6) and v.meta["harmful_request"] and not v.meta["response_refusal"]
    text_only = SimpleNamespace(message=SimpleNamespace(content="Harmful request: no\nResponse refusal: yes\nHarmful response: no"),
                                logprobs=None)
    assert score_chat_answer(text_only, WILDGUARD).score < 0
    assert score_chat_answer(SimpleNamespace(message=SimpleNamespace(content="??"), logprobs=None), WILDGUARD).score is None


def test_transformers_generation_path_scores_the_token_after_the_marker() -> None:
    if not (SMOL / "tokenizer.json").is_file():
        pytest.skip(f"{SMOL} missing; run `rlaif-uu assets --install smollm2-135m-instruct`")
    from transformers import PreTrainedTokenizerFast

    from rlaif_uu.label.transformers_backend import verdict_token_ids

    tok = PreTrainedTokenizerFast.from_pretrained(SMOL)
    tok.pad_token = tok.eos_token
    answer = tok.encode("Harmful request: yes\nResponse refusal: no\nHarmful response: yes", add_special_tokens=False)
    pieces = [tok.decode([t]) for t in answer]
    k = marker_position(pieces, "Harmful response:")
    assert k is not None
    yes, no = verdict_token_ids(tok, "yes"), verdict_token_ids(tok, "no")

    class Scripted(torch.nn.Module):
        """Answers with the fixed WildGuard lines; at the verdict step P(yes) = 0.8, P(no) = 0.2."""

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def generate(self, input_ids: torch.Tensor, **_: object) -> SimpleNamespace:
            n = input_ids.shape[0]
            scores = [torch.full((n, len(tok)), -1e4) for _ in answer]
            for step, t in enumerate(answer):
                scores[step][:, t] = 0.0
            scores[k][:, :] = -1e4
            scores[k][:, yes[0]], scores[k][:, no[0]] = torch.log(torch.tensor(0.8)), torch.log(torch.tensor(0.2))
            seq = torch.cat([input_ids, torch.tensor([answer] * n)], dim=1)
            return SimpleNamespace(sequences=seq, scores=scores)

    verdicts = generate_verdicts(Scripted(), tok, ["a prompt", "another, longer prompt"], WILDGUARD, yes, no)
    for v in verdicts:
        assert v.score == pytest.approx(float(torch.log(torch.tensor(4.0))), abs=1e-4)
        assert v.meta["harmful_request"] and not v.meta["response_refusal"] and v.meta["harmful_response"]
