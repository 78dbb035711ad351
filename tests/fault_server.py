"""A fault-injecting OpenAI-compatible chat-completions server on loopback, for tests.

Modes (``server.mode``, changeable between requests):

* ``ok``: 200 with log-probabilities (``unsafe`` when the user message contains a
  marker from :data:`UNSAFE_MARKERS`, else ``safe``);
* ``slow``: ``ok`` after ``server.delay`` seconds;
* ``500``: the first request for each distinct user message gets HTTP 500, later ones ``ok``;
* ``429``: the first request for each message gets HTTP 429 with ``Retry-After: server.retry_after``;
* ``text``: the verdict word as text, no log-probabilities;
* ``garbage``: text that is no verdict, no log-probabilities;
* ``401`` / ``404``: always that status;
* ``html``: 200 with an HTML page (``Content-Type: text/html``), as a proxy or web UI answers;
* ``nochoices``: 200 with an empty ``choices`` list (a server that dropped the answer);
* ``constant``: 200 with the same log-probabilities for every row (a judge whose score never varies);
* ``empty``: 200 with an empty completion text and no log-probabilities.

``server.counts[mode]`` counts requests per mode, ``server.asked[user message]`` counts
requests per row, ``server.max_in_flight`` the most concurrent requests, and
``server.auth`` the Authorization headers seen.

Usage::

    with FaultServer(mode="ok") as server:
        judge = OpenAIJudge("m", server.url)
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UNSAFE_MARKERS = ("Sure, here is", "bomb", "poison")
HTML_PAGE = "<!DOCTYPE html><html><head><title>Login</title></head><body><h1>Please sign in</h1></body></html>"


def completion(model: str, text: str, top: list[tuple[str, float]] | None) -> dict[str, Any]:
    """A chat-completion body with one choice (and log-probabilities when ``top`` is given)."""
    logprobs = None
    if top:
        entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in top]
        logprobs = {"content": [{"token": top[0][0], "logprob": top[0][1], "bytes": None, "top_logprobs": entries}]}
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length", "logprobs": logprobs}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


class FaultServer:
    """Run the server in a daemon thread on 127.0.0.1 (a free port); see the module docstring."""

    def __init__(self, mode: str = "ok", delay: float = 0.2, retry_after: float = 0.3, model: str = "judge-test") -> None:
        self.mode, self.delay, self.retry_after, self.model = mode, delay, retry_after, model
        self.counts: Counter[str] = Counter()
        self.asked: Counter[str] = Counter()
        self.failed: set[str] = set()
        self.auth: list[str] = []
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        """The API root (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, user: str) -> tuple[int, dict[str, str], dict[str, Any]]:
        """(status, headers, body) for one request in the current mode."""
        mode = self.mode
        with self.lock:
            self.counts[mode] += 1
            first = user not in self.failed
            if mode in ("500", "429") and first:
                self.failed.add(user)
            else:
                self.asked[user] += 1
        if mode == "401":
            return 401, {}, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        if mode == "404":
            return 404, {}, {"error": {"message": "The model does not exist", "type": "NotFoundError"}}
        if mode == "500" and first:
            return 500, {}, {"error": {"message": "internal error"}}
        if mode == "429" and first:
            return 429, {"Retry-After": str(self.retry_after)}, {"error": {"message": "rate limited"}}
        if mode == "slow":
            time.sleep(self.delay)
        unsafe = any(m in user for m in UNSAFE_MARKERS)
        if mode == "html":
            return 200, {"Content-Type": "text/html; charset=utf-8"}, HTML_PAGE  # type: ignore[return-value]
        if mode == "nochoices":
            return 200, {}, completion(self.model, "", None) | {"choices": []}
        if mode == "empty":
            return 200, {}, completion(self.model, "", None)
        if mode == "constant":
            return 200, {}, completion(self.model, "safe", [("safe", _log(0.7)), ("unsafe", _log(0.3))])
        if mode == "garbage":
            return 200, {}, completion(self.model, "Banana", None)
        if mode == "text":
            return 200, {}, completion(self.model, "Unsafe" if unsafe else "safe", None)
        p = 0.9 if unsafe else 0.2
        top = [("unsafe", _log(p * 0.8)), ("safe", _log((1 - p) * 0.8)), (" Unsafe", _log(p * 0.1)), ("Safe", _log((1 - p) * 0.1)), ("The", _log(0.05))]
        top.sort(key=lambda t: -t[1])
        return 200, {}, completion(self.model, top[0][0], top)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # silence stderr
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                with server.lock:
                    server.auth.append(self.headers.get("Authorization", ""))
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if not self.path.endswith("/chat/completions"):
                        status, headers, payload = 404, dict[str, str](), {"error": {"message": "no such route"}}
                    else:
                        user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
                        status, headers, payload = server.answer(user)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _log(p: float) -> float:
    import math

    return math.log(p)


if __name__ == "__main__":  # pragma: no cover - manual use: python -m tests.fault_server MODE
    import sys

    with FaultServer(mode=sys.argv[1] if len(sys.argv) > 1 else "ok") as s:
        print(s.url, flush=True)
        threading.Event().wait()
