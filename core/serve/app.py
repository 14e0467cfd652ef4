"""The OpenAI-compatible HTTP API: ``POST /v1/chat/completions`` (plain and streamed), ``GET /v1/models``,
``GET /health``. FastAPI is imported only here, and this module only by ``ftp serve``.

Responses and stream chunks follow the shapes the official ``openai`` client validates (see
docs/serving.md); every error is OpenAI's ``{"error": {message, type, param, code}}`` with its status.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations (``Request``) at
# definition time, and they are imported inside ``create_app``.
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ftp.errors import UserError
from ftp.serve.engine import Completion, Engine, NotServable
from ftp.serve.routing import NoTraffic, Route, Router, UnknownModel

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_CAP = 4096


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
    """The fields honoured; unknown ones (logit_bias, metadata, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    n: int | None = None


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


def parse_request(body: Any) -> ChatRequest:
    """The validated request, or a 400 naming the first bad field (OpenAI answers 400, not 422)."""
    try:
        request = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ApiError(400, f"{where}: {first['msg']}", param=where or None) from None
    if request.n not in (None, 1):
        raise ApiError(400, "n: only n=1 is supported", param="n")
    limit = request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS
    if limit > MAX_TOKENS_CAP:
        raise ApiError(400, f"max_tokens: at most {MAX_TOKENS_CAP}", param="max_tokens")
    return request


def route_for(router: Router, request: ChatRequest) -> Route:
    """The version answering the request, with routing errors as OpenAI errors."""
    try:
        return router.route(request.model, request.user)
    except UnknownModel as exc:
        raise ApiError(404, str(exc), param="model", code="model_not_found") from None
    except NoTraffic as exc:
        raise ApiError(503, str(exc), kind="server_error", param="model") from None
    except UserError as exc:
        raise ApiError(400, str(exc), param="model") from None


def check_token(header: str | None, token: str | None) -> None:
    """A bearer token when one is configured, compared in constant time."""
    if token is None:
        return
    given = (header or "").removeprefix("Bearer ").strip() if (header or "").startswith("Bearer ") else ""
    if not hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8")):
        raise ApiError(401, "Incorrect or missing API key: send Authorization: Bearer <token>",
                       code="invalid_api_key")


def completion_body(cid: str, created: int, route: Route, done: Completion) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion", "created": created, "model": route.label,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": done.text},
                         "finish_reason": done.finish_reason, "logprobs": None}],
            "usage": usage(done)}


def usage(done: Completion) -> dict[str, int]:
    return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens}


def chunk(cid: str, created: int, route: Route, delta: dict[str, Any], finish: str | None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": route.label,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    return f"data: {json.dumps(body)}\n\n"


def stream_events(cid: str, created: int, route: Route, done: Completion, include_usage: bool) -> Iterator[str]:
    """The answer as SSE chunks: the role first, the text word by word, the finish reason, the usage
    chunk when asked for, then ``[DONE]``. (The answer is generated whole first: not token streaming.)"""
    yield chunk(cid, created, route, {"role": "assistant", "content": ""}, None)
    words = done.text.split(" ")
    for i, word in enumerate(words):
        piece = word if i == 0 else " " + word
        if piece:
            yield chunk(cid, created, route, {"content": piece}, None)
    yield chunk(cid, created, route, {}, done.finish_reason)
    if include_usage:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": route.label,
                "choices": [], "usage": usage(done)}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"


def route_headers(route: Route) -> dict[str, str]:
    return {"x-ftp-version": route.label, "x-ftp-model-version": str(route.version.version),
            "x-ftp-slot": route.slot or "", "x-ftp-route": route.reason}


def create_app(router: Router, engine: Engine, token: str | None = None) -> Any:
    """The FastAPI app over ``router`` and ``engine``; ``token``: the bearer token required on /v1."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    app = FastAPI(title="ftp serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(ApiError(400, str(exc.errors()[:1])).body(), status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(ApiError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:  # a bug still answers in OpenAI's shape
        return JSONResponse(ApiError(500, f"internal error: {type(exc).__name__}", kind="server_error").body(),
                            status_code=500)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_token(request.headers.get("authorization"), token)
        return {"object": "list", "data": await run_in_threadpool(router.models)}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        check_token(request.headers.get("authorization"), token)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None
        parsed = parse_request(body)
        messages = [{"role": m.role, "content": text_of(m)} for m in parsed.messages]
        route = await run_in_threadpool(route_for, router, parsed)
        stop = [parsed.stop] if isinstance(parsed.stop, str) else list(parsed.stop or [])
        limit = parsed.max_completion_tokens or parsed.max_tokens or DEFAULT_MAX_TOKENS
        try:
            done = await run_in_threadpool(engine.complete, route.version, messages, limit, stop)
        except NotServable as exc:
            raise ApiError(503, str(exc), kind="server_error") from None
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if parsed.stream:
            include = bool((parsed.stream_options or {}).get("include_usage"))
            return StreamingResponse(stream_events(cid, created, route, done, include), media_type="text/event-stream",
                                     headers={**route_headers(route), "cache-control": "no-cache"})
        return JSONResponse(completion_body(cid, created, route, done), headers=route_headers(route))

    return app
