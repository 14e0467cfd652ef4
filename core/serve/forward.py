"""A served model that is another OpenAI-compatible server (a vLLM process ftp started, any gateway):
each ``GenerationRequest`` forwarded as a chat completion, streamed answers read as server-sent events.

The standard library's HTTP client only, so the engines that forward add no dependency.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ftp.data.files import message_text
from ftp.errors import FtpError, RequestRejected
from ftp.types import Completion, GenerationRequest


class Upstream(FtpError):
    """The forwarded-to server failed (its status and message in one line)."""


def chat_fields(request: GenerationRequest) -> dict[str, Any]:
    """The OpenAI chat-completions fields of ``request`` (seed and stop only when given): what every
    engine that forwards sends."""
    body: dict[str, Any] = {"messages": [dict(m) for m in request.messages], "max_tokens": request.max_tokens,
                            "temperature": request.temperature, "top_p": request.top_p}
    if request.seed is not None:
        body["seed"] = request.seed
    if request.stop:
        body["stop"] = list(request.stop)
    return body


def body_for(model: str, request: GenerationRequest, stream: bool) -> dict[str, Any]:
    body = {"model": model, **chat_fields(request), "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


def finish_of(reason: Any) -> str:
    """An upstream finish reason in ftp serve's two: ``length`` stays, the rest (``stop``,
    ``content_filter``, ``tool_calls``) end the answer as ``stop``."""
    return "length" if reason == "length" else "stop"


class OpenAICompatible:
    """``model`` on the server at ``base_url`` (``http://host:port/v1``), with extra ``headers``."""

    def __init__(self, label: str, base_url: str, model: str, headers: dict[str, str] | None = None,
                 timeout_s: float = 300.0) -> None:
        self.label, self.model, self.headers, self.timeout_s = label, model, dict(headers or {}), timeout_s
        parts = urlsplit(base_url.rstrip("/"))
        self.scheme, self.netloc, self.path = parts.scheme, parts.netloc, parts.path

    def _post(self, request: GenerationRequest, stream: bool) -> tuple[http.client.HTTPConnection, Any]:
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        conn = kind(self.netloc, timeout=request.timeout_s or self.timeout_s)
        payload = json.dumps(body_for(self.model, request, stream)).encode("utf-8")
        try:
            conn.request("POST", f"{self.path}/chat/completions", payload,
                         {"Content-Type": "application/json", **self.headers})
            answer = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise
        except OSError as exc:
            conn.close()
            raise Upstream(f"{self.label}: cannot reach {self.scheme}://{self.netloc}: {exc}") from None
        if answer.status >= 400:
            text = answer.read().decode("utf-8", "replace")
            conn.close()
            raise self._error(answer.status, text)
        return conn, answer

    def _error(self, status: int, text: str) -> Exception:
        try:
            error = json.loads(text).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        message = error.get("message") if isinstance(error, dict) else None
        line = f"{self.label}: the server answered {status}: {message or text[:200]}"
        return RequestRejected(line, code=error.get("code")) if status == 400 else Upstream(line)

    def complete(self, request: GenerationRequest) -> Completion:
        conn, answer = self._post(request, stream=False)
        try:
            data = json.loads(answer.read())
        finally:
            conn.close()
        choice, used = data["choices"][0], data.get("usage") or {}
        return Completion(text=choice["message"].get("content") or "", finish_reason=finish_of(choice.get("finish_reason")),
                          prompt_tokens=int(used.get("prompt_tokens", 0)),
                          completion_tokens=int(used.get("completion_tokens", 0)))

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        conn, answer = self._post(request, stream=True)  # an error now is an error before any text
        return self._events(conn, answer)

    def _events(self, conn: http.client.HTTPConnection, answer: Any) -> Iterator[str | Completion]:
        def fail(reason: str, error: dict[str, Any] | None) -> Exception:
            return Upstream(f"{self.label}: the server {reason}")

        def done(text: str, finish: str, used: dict[str, Any]) -> Completion:
            return Completion(text=text, finish_reason="length" if finish == "length" else "stop",
                              prompt_tokens=int(used.get("prompt_tokens", 0)),
                              completion_tokens=int(used.get("completion_tokens", 0)))

        try:
            yield from pieces_of(sse_events(answer, fail), done)
        finally:
            conn.close()


def sse_events(lines: Iterable[bytes | str], fail: Callable[[str, dict[str, Any] | None], Exception]
               ) -> Iterator[dict[str, Any]]:
    """The JSON objects of a ``text/event-stream`` body, up to ``data: [DONE]``; comments, ``event:``
    and blank lines are skipped. ``fail(reason, error)`` makes the exception for an event that is not
    JSON (``error`` None) or an ``error`` event (its object)."""
    for raw in lines:
        line = (raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw).strip()
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        if not data:
            continue
        try:
            event = json.loads(data)
        except ValueError:
            raise fail(f"sent a stream event that is not JSON ({data[:60]!r})", None) from None
        if isinstance(event, dict) and isinstance(event.get("error"), dict):
            err = event["error"]
            raise fail(f"failed mid-stream: {err.get('code') or err.get('type') or 'error'}: "
                       f"{' '.join(str(err.get('message') or '').split())}", err)
        if isinstance(event, dict):
            yield event


def pieces_of(events: Iterable[dict[str, Any]], done: Callable[[str, str, dict[str, Any]], Completion]
              ) -> Iterator[str | Completion]:
    """The text of ``chat.completion.chunk`` events piece by piece as they come, then
    ``done(text, finish reason, usage)``."""
    text: list[str] = []
    finish, used = "stop", dict[str, Any]()
    for event in events:
        used = event.get("usage") or used
        for choice in event.get("choices") or []:
            piece = message_text((choice.get("delta") or {}).get("content"))
            if piece:
                text.append(piece)
                yield piece
            if choice.get("finish_reason"):
                finish = finish_of(choice["finish_reason"])
    yield done("".join(text), finish, used)
