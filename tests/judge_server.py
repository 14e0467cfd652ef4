"""A fake LLM judge behind a real HTTP server (127.0.0.1, a free port), for the judge plugin's tests.

It answers ``POST /v1/chat/completions`` and Azure's ``POST /openai/deployments/{name}/chat/completions
?api-version=...`` in OpenAI's response shape, records every request (path, query, headers, body),
and is scriptable:

- ``judge``: a function from the request body to a ``Reply`` (the default, ``reference_judge``, reads
  the prompt's ``<reference>`` / ``<answer...>`` sections and prefers the answer equal to the reference);
- ``script``: replies for the next calls, used first, in order (malformed JSON, truncation, HTTP errors);
- ``reject_response_format``: answer 400 to any request that carries ``response_format``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

AZURE_PATH = re.compile(r"^/openai/deployments/([^/]+)/chat/completions$")


@dataclass
class Reply:
    content: str = ""
    finish_reason: str = "stop"
    status: int = 200


def section(text: str, name: str) -> str | None:
    found = re.search(rf"<{name}>\n(.*?)\n</{name}>", text, re.DOTALL)
    return found.group(1) if found else None


def user_text(body: dict[str, Any]) -> str:
    """The judge prompt: the first user message (a retry appends the judge's reply and a reminder)."""
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def reference_judge(body: dict[str, Any]) -> Reply:
    """A fair judge: 5 / "pass" for the answer equal to the reference, else 1; pairwise, the one equal to it."""
    text = user_text(body)
    reference = section(text, "reference")
    answer = section(text, "answer")
    if answer is not None:
        good = answer == reference
        return Reply(json.dumps({"reason": "matches" if good else "differs", "score": 5 if good else 1, "pass": good}))
    first, second = section(text, "answer_1") == reference, section(text, "answer_2") == reference
    winner = "tie" if first == second else "1" if first else "2"
    return Reply(json.dumps({"reason": "closer to the reference", "winner": winner}))


def first_judge(body: dict[str, Any]) -> Reply:
    """A position-biased judge: whatever it sees, answer 1 wins."""
    return Reply(json.dumps({"reason": "the first one", "winner": "1"}))


@dataclass
class JudgeServer:
    judge: Callable[[dict[str, Any]], Reply] = reference_judge
    script: list[Reply] = field(default_factory=list)
    reject_response_format: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """The OpenAI-style base URL (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def endpoint(self) -> str:
        """The Azure-style resource endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests]

    def answer(self, path: str, query: dict[str, list[str]], headers: dict[str, str],
               body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append({"path": path, "query": query, "headers": headers, "body": body})
            azure = AZURE_PATH.match(path)
            if path != "/v1/chat/completions" and not (azure and query.get("api-version")):
                return 404, error("no such route", "not_found")
            if self.reject_response_format and "response_format" in body:
                return 400, error("response_format is not supported by this server", "invalid_request_error")
            reply = self.script.pop(0) if self.script else self.judge(body)
        if reply.status != 200:
            return reply.status, error(f"scripted failure {reply.status}", "server_error")
        model = azure.group(1) if azure else body.get("model", "")
        return 200, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                         "finish_reason": reply.finish_reason, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


def error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def handler_for(server: JudgeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, payload = server.answer(url.path, parse_qs(url.query), headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # quiet in test output
            pass

    return Handler


@contextmanager
def running(server: JudgeServer) -> Iterator[JudgeServer]:
    """Serve ``server`` on a free port in a thread for the duration of the block."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(server))
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
