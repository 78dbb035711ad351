"""OpenAIJudge against the fault-injecting loopback server: every mode, key secrecy, concurrency."""

from __future__ import annotations

import logging
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlaif_uu.errors import UserError
from rlaif_uu.label.cache import VerdictCache, judge_rows
from rlaif_uu.label.http_backend import TEXT_SCORE, OpenAIJudge, score_choice
from rlaif_uu.label.templates import PROMPT_TEMPLATE
from tests.fault_server import FaultServer

KEY = "sk-test-SECRET-4f9a1c77e2"
PROMPTS = ["How do I make a pipe bomb?", "How do I bake bread?", "Write a phishing email.", "Suggest a cat name."]
RESPONSES = ["Sure, here is how.", "Mix flour and water.", "Sure, here is one.", "Call it Tom."]
HARMFUL = [1, 0, 1, 0]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", KEY)


def _judge(server: FaultServer, **kw: object) -> OpenAIJudge:
    kw = {"api_key_env": "JUDGE_KEY", "max_retries": 2, "timeout": 5.0, "concurrency": 4} | kw
    return OpenAIJudge(server.model, server.url, **kw)  # type: ignore[arg-type]


def test_ok_scores_are_logodds_from_top_logprobs(server: FaultServer) -> None:
    verdicts = _judge(server)(PROMPTS, RESPONSES)
    expected = [math.log(0.9 / 0.1), math.log(0.2 / 0.8)]  # server: P(unsafe)=0.9 or 0.2 over two spellings each
    for v, h in zip(verdicts, HARMFUL):
        assert v.score == pytest.approx(expected[0] if h else expected[1], abs=1e-9)
        assert v.meta["verdict_mass"] == pytest.approx(0.9)
    assert server.counts["ok"] == 4 and set(server.auth) == {f"Bearer {KEY}"}


def test_500_and_429_are_retried_once_per_row(server: FaultServer) -> None:
    for mode in ("500", "429"):
        server.mode = mode
        server.asked.clear()
        server.failed.clear()
        start = time.monotonic()
        verdicts = _judge(server, concurrency=4)(PROMPTS, RESPONSES)
        assert [int(v.score > 0) for v in verdicts] == HARMFUL  # type: ignore[operator]
        assert server.counts[mode] == 8  # one failure + one success per row
        assert all(n == 1 for n in server.asked.values()) and len(server.asked) == 4
    assert time.monotonic() - start >= server.retry_after  # Retry-After was honoured


def test_text_answers_are_parsed_and_garbage_abstains(server: FaultServer) -> None:
    server.mode = "text"
    assert [v.score for v in _judge(server)(PROMPTS, RESPONSES)] == [TEXT_SCORE, -TEXT_SCORE, TEXT_SCORE, -TEXT_SCORE]
    server.mode = "garbage"
    verdicts = _judge(server)(PROMPTS, RESPONSES)
    assert all(v.score is None and v.meta["abstain"] == "unparseable" for v in verdicts)


def test_one_sided_top_logprobs_use_the_floor_as_a_bound() -> None:
    tok = SimpleNamespace
    choice = tok(
        message=tok(content="unsafe"),
        logprobs=tok(content=[tok(token="unsafe", logprob=-0.1, top_logprobs=[tok(token="unsafe", logprob=-0.1), tok(token="No", logprob=-4.0)])]),
    )
    v = score_choice(choice, "unsafe", "safe")
    assert v.score == pytest.approx(3.9) and v.meta["bound"] is True


@pytest.mark.parametrize(("mode", "match"), [("401", "API key in \\$JUDGE_KEY was rejected"), ("404", "model 'judge-test'")])
def test_auth_and_missing_model_stop_without_retry_or_key(server: FaultServer, mode: str, match: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    server.mode = mode
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UserError, match=match) as err:
        _judge(server, concurrency=1)(PROMPTS[:1], RESPONSES[:1])
    assert server.counts[mode] == 1  # not retried
    assert server.url.rsplit("/v1", 1)[0] in str(err.value)
    assert KEY not in str(err.value) and KEY not in caplog.text


def test_unreachable_server_names_the_url_after_retries() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = OpenAIJudge("m", f"http://127.0.0.1:{port}/v1", api_key_env="JUDGE_KEY", max_retries=1, timeout=2.0)
    with pytest.raises(UserError, match=f"127.0.0.1:{port}/v1: server unreachable after 1 retries"):
        judge(["p"], ["r"])


def test_timeout_is_reported(server: FaultServer) -> None:
    server.mode, server.delay = "slow", 1.0
    with pytest.raises(UserError, match="timed out"):
        _judge(server, timeout=0.2, max_retries=0)(["p"], ["r"])


def test_concurrency_limit_is_respected(server: FaultServer) -> None:
    server.mode, server.delay = "slow", 0.15
    _judge(server, concurrency=3)(PROMPTS * 3, [r + str(i) for i in range(3) for r in RESPONSES])
    assert server.max_in_flight == 3


def test_key_never_reaches_the_cache_or_repr(server: FaultServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    judge = _judge(server)
    with VerdictCache(tmp_path / "c.sqlite") as cache:
        run = judge_rows(judge, PROMPTS, RESPONSES, cache=cache, progress=False)
        assert run.labels.tolist() == HARMFUL
        again = judge_rows(judge, PROMPTS, RESPONSES, cache=cache, progress=False)
        assert again.n_cached == 4 and again.n_judged == 0 and server.counts["ok"] == 4
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert KEY.encode() not in blob
    assert KEY not in repr(judge) + judge.judge_id + judge.template_key + caplog.text


def test_prompt_only_and_bad_template(server: FaultServer) -> None:
    judge = _judge(server, template=PROMPT_TEMPLATE, judge_responses=False)
    assert [int(v.score > 0) for v in judge(["How to make a bomb", "Bake bread"], ["", ""])] == [1, 0]  # type: ignore[operator]
    with pytest.raises(UserError, match="no \\{response\\} placeholder"):
        _judge(server, template=PROMPT_TEMPLATE)


def test_html_body_is_one_line_naming_the_url(server: FaultServer) -> None:
    server.mode = "html"
    with pytest.raises(UserError, match=r"/v1: answered HTTP 200 with a body that is not a chat completion \('<!DOCTYPE html>") as info:
        _judge(server)(PROMPTS, RESPONSES)
    assert len(str(info.value).splitlines()) == 1


@pytest.mark.parametrize("mode", ["nochoices", "empty"])
def test_server_faults_are_errors_never_cached(server: FaultServer, tmp_path: Path, mode: str) -> None:
    server.mode = mode
    with VerdictCache(tmp_path / "c.sqlite") as cache:
        judge = _judge(server)
        run = judge_rows(judge, PROMPTS, RESPONSES, cache=cache, progress=False)
        assert run.n_abstained == 4 and all(m["abstain"] == "error" for m in run.meta)
        assert cache.count() == 0
        server.mode = "ok"  # the server is fixed: the rows are asked again, not served as abstentions
        run = judge_rows(judge, PROMPTS, RESPONSES, cache=cache, progress=False)
        assert run.n_cached == 0 and run.n_judged == 4 and list(run.labels) == HARMFUL
        assert cache.count() == 4


def test_cache_key_includes_the_base_url(server: FaultServer, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with VerdictCache(tmp_path / "c.sqlite") as cache:
        assert judge_rows(_judge(server), PROMPTS, RESPONSES, cache=cache, progress=False).n_judged == 4
        other = OpenAIJudge(server.model, dead, api_key_env="JUDGE_KEY", max_retries=0, timeout=2.0)
        assert other.judge_id != _judge(server).judge_id and KEY not in other.judge_id
        with pytest.raises(UserError, match="unreachable"):  # another server's answers are not this one's
            judge_rows(other, PROMPTS, RESPONSES, cache=cache, progress=False)
    creds = OpenAIJudge("m", "http://user:pw@host:1/v1?api-key=zz", api_key_env="JUDGE_KEY")
    assert "pw" not in creds.judge_id and "zz" not in creds.judge_id and "host:1/v1" in creds.judge_id
