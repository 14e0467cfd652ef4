"""OpenAI's chat-completions wire format: the request fields ``ftp serve`` honours, its errors, and the
response and stream-chunk bodies the official ``openai`` client validates (see docs/serving.md)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftp.types import Completion


class ApiError(Exception):
    """An error answered in OpenAI's shape with ``status``."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """The fields honoured; unknown ones (logit_bias, metadata, response_format, ...) are accepted and
    ignored, as clients send them."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    n: int | None = None

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


def text_of(message: ChatMessage) -> str:
    """String content, or the text parts of a list content joined (other part types are refused)."""
    if message.content is None or isinstance(message.content, str):
        return message.content or ""
    parts = []
    for part in message.content:
        if part.get("type") != "text":
            raise ApiError(400, f"content part type {part.get('type')!r} is not supported; send text parts",
                           param="messages")
        parts.append(str(part.get("text", "")))
    return "".join(parts)


def parse_request(body: Any, max_messages: int, max_tokens: int, default_tokens: int) -> ChatRequest:
    """The validated request, or a 400 naming the first bad field (OpenAI answers 400, not 422)."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None
    if request.n not in (None, 1):
        raise ApiError(400, "n: only n=1 is supported", param="n")
    if len(request.messages) > max_messages:
        raise ApiError(400, f"messages: {len(request.messages)} messages, at most {max_messages} "
                       "(serve.limits.max_messages)", param="messages")
    stops = request.stops()
    if len(stops) > 4:
        raise ApiError(400, "stop: at most 4 stop sequences", param="stop")
    if request.token_limit(default_tokens) > max_tokens:
        raise ApiError(400, f"max_tokens: at most {max_tokens} (serve.limits.max_tokens)", param="max_tokens")
    return request


def check_token(header: str | None, token: str | None) -> None:
    """A bearer token when one is configured, compared in constant time."""
    if token is None:
        return
    given = (header or "").removeprefix("Bearer ").strip() if (header or "").startswith("Bearer ") else ""
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise ApiError(401, "Incorrect or missing API key: send Authorization: Bearer <token>",
                       code="invalid_api_key")


def usage(done: Completion) -> dict[str, int]:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


def completion_body(cid: str, created: int, label: str, done: Completion) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": created, "model": label,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "finish_reason": done.finish_reason, "logprobs": None}],
            "usage": usage(done)}


def event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


def chunk(cid: str, created: int, label: str, delta: dict[str, Any], finish: str | None) -> str:
    return event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": label,
                  "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})


def usage_chunk(cid: str, created: int, label: str, done: Completion) -> str:
    return event({"id": cid, "object": "chat.completion.chunk", "created": created, "model": label,
                  "choices": [], "usage": usage(done)})


DONE = "data: [DONE]\n\n"
