"""One chat completion from request to log row: limits, routing, the engine (with its timeout), the
streamed or whole answer, the shadow copy for a mirrored slot, and the request-log row and metrics.

Everything that waits on a model runs in worker threads, so the event loop keeps accepting requests
(and answering 429 past ``serve.limits.max_concurrent``) while answers are generated.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ftp.errors import RequestRejected, UserError
from ftp.monitor.features import answer_sha256, prompt_features
from ftp.serve.engine import Engines, NotServable
from ftp.serve.protocol import DONE, ApiError, ChatRequest, check_token, chunk, completion_body, event, parse_request
from ftp.serve.protocol import text_of, usage_chunk
from ftp.serve.request_log import RequestLog, RequestRecord, prompt_sha256, prompt_text, utc_now
from ftp.serve.routing import NoTraffic, Route, Router, UnknownModel
from ftp.types import Completion, GenerationRequest

if TYPE_CHECKING:
    from ftp.config.settings import ServeSettings
    from ftp.monitor.reference import Formats
    from ftp.serve.metrics import ServeMetrics

log = logging.getLogger(__name__)
PIN_HEADERS = ("x-ftp-slot", "azureml-model-deployment")  # the latter so scripts move from Azure ML unchanged


@dataclass
class Exchange:
    """What is known about one request so far: its log row is built from this whatever happens."""

    model: str = ""
    cid: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    started: float = field(default_factory=time.perf_counter)
    arrived: str = field(default_factory=utc_now)  # the log's time stamp: when the request came in
    route: Route | None = None
    prompt: str = ""
    ttft_ms: float | None = None
    done: Completion | None = None
    features: dict[str, Any] = field(default_factory=dict)  # the prompt's shape (ftp.monitor.features)
    check: Callable[[str], tuple[bool | None, str | None]] | None = None  # the answer's format and label


def route_headers(route: Route) -> dict[str, str]:
    return {"x-ftp-version": route.label, "x-ftp-model-version": "0" if route.base else str(route.version.version),
            "x-ftp-slot": route.slot or "", "x-ftp-route": route.reason}


def as_api_error(exc: BaseException) -> ApiError:
    """An engine's or router's exception in OpenAI's shape (a bug is a 500 that names only its type)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestRejected):
        return ApiError(400, str(exc), param=exc.param, code=exc.code)
    if isinstance(exc, UnknownModel):
        return ApiError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, (NoTraffic, NotServable)):
        return ApiError(503, str(exc), kind="server_error")
    if isinstance(exc, UserError):
        return ApiError(400, str(exc), param="model")
    if isinstance(exc, TimeoutError):
        return ApiError(504, f"the model did not answer in time: {exc}", kind="server_error", code="timeout")
    log.error("internal error answering a request", exc_info=exc)  # a bug: its traceback goes to the server's log
    return ApiError(500, f"internal error: {type(exc).__name__}", kind="server_error")


class Service:
    """The chat-completions endpoint's behaviour, over a router, the engines and the log."""

    def __init__(self, router: Router, engines: Engines, settings: "ServeSettings", token: str | None,
                 log: RequestLog | None, metrics: "ServeMetrics", formats: "Formats | None" = None) -> None:
        self.router, self.engines, self.settings, self.token = router, engines, settings, token
        self.log, self.metrics, self.formats = log, metrics, formats
        self.in_flight = 0
        self.shadows: set[asyncio.Task[None]] = set()

    # --- the request ------------------------------------------------------------------------------

    async def admit(self, headers: Any, read: Callable[[], Awaitable[bytes]]) -> Any:
        """The JSON body of an authorised request within the limits, else the ApiError to answer (a body
        declared too big is refused before it is read)."""
        check_token(headers.get("authorization"), self.token)
        limit = self.settings.limits.max_request_bytes
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"the request body is {declared} bytes, at most {limit} (serve.limits.max_request_bytes)")
        body = await read()
        if len(body) > limit:
            raise ApiError(413, f"the request body is {len(body)} bytes, at most {limit} (serve.limits.max_request_bytes)")
        try:
            return json.loads(body)
        except ValueError:
            raise ApiError(400, "the request body is not JSON") from None

    def generation(self, parsed: ChatRequest) -> GenerationRequest:
        s = self.settings
        return GenerationRequest(messages=[{"role": m.role, "content": text_of(m)} for m in parsed.messages],
                                 max_tokens=parsed.token_limit(s.default_max_tokens),
                                 temperature=parsed.temperature or 0.0, top_p=parsed.top_p or 1.0, seed=parsed.seed,
                                 stop=parsed.stops(), timeout_s=s.limits.timeout_s)

    async def chat(self, headers: Any, read: Callable[[], Awaitable[bytes]]) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        ex = Exchange()
        if self.in_flight >= self.settings.limits.max_concurrent:
            error = ApiError(429, f"{self.in_flight} requests in flight, at most {self.settings.limits.max_concurrent} "
                             "(serve.limits.max_concurrent); retry shortly", kind="rate_limit_error",
                             code="rate_limit_exceeded")
            self.record(ex, error.status, "rate_limited")
            return JSONResponse(error.body(), status_code=429, headers={"retry-after": "1"})
        self.in_flight += 1
        self.metrics.started()
        streaming = False
        try:
            parsed = parse_request(await self.admit(headers, read), self.settings.limits.max_messages,
                                   self.settings.limits.max_tokens, self.settings.default_max_tokens)
            ex.model = parsed.model
            request = self.generation(parsed)
            ex.prompt = prompt_text(request.messages)
            pin = next((headers[h] for h in PIN_HEADERS if headers.get(h)), None)
            ex.route = route = await run_in_threadpool(self.router.route, parsed.model, parsed.user, pin)
            await run_in_threadpool(self.describe, ex, request)
            model = await run_in_threadpool(self.engines.model, route.version, route.base)
            await self.shadow(route, request)
            cid, created = ex.cid, int(time.time())
            if parsed.stream:
                pieces = await run_in_threadpool(model.stream, request)
                first = await run_in_threadpool(next, pieces, None)  # an error before any text is a plain HTTP error
                streaming = True
                return self.streamed(ex, cid, created, pieces, first, parsed.include_usage())
            ex.done = await run_in_threadpool(model.complete, request)
            self.record(ex, 200)
            return JSONResponse(completion_body(cid, created, route.label, ex.done), headers=route_headers(route))
        except Exception as exc:
            error = as_api_error(exc)
            self.record(ex, error.status, type(exc).__name__)
            headers_out = route_headers(ex.route) if ex.route else {}
            return JSONResponse(error.body(), status_code=error.status, headers=headers_out)
        finally:
            if not streaming:
                self.release()

    def release(self) -> None:
        self.in_flight -= 1
        self.metrics.finished()

    # --- feedback ---------------------------------------------------------------------------------

    async def feedback(self, headers: Any, read: Callable[[], Awaitable[bytes]]) -> Any:
        """``POST /v1/feedback``: one item or a list, each naming a request this server logged; stored
        all or nothing."""
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        try:
            body = await self.admit(headers, read)
            if self.log is None:
                raise ApiError(503, "this server keeps no request log, so it cannot store feedback",
                               kind="server_error")
            items = await run_in_threadpool(self.store_feedback, body if isinstance(body, list) else [body])
            return JSONResponse({"object": "list", "data": items})
        except ApiError as error:
            return JSONResponse(error.body(), status_code=error.status)

    def store_feedback(self, body: list[Any]) -> list[dict[str, Any]]:
        from ftp.monitor.feedback import add_feedback, known_requests, parse_feedback

        assert self.log is not None
        try:
            items = [parse_feedback(data, f"feedback[{i}]") for i, data in enumerate(body)]
        except UserError as exc:
            raise ApiError(400, str(exc), param="feedback") from None
        if not items or any(item.request_id is None for item in items):
            raise ApiError(400, "each feedback item needs the request_id of an answer this server gave "
                           "(labelled prompts without one: ftp feedback import)", param="request_id")
        self.log.flush(timeout=10)  # the rows of the answers just given are on disk
        known = known_requests(self.log.path, [str(item.request_id) for item in items])
        unknown = [item.request_id for item in items if item.request_id not in known]
        if unknown:
            raise ApiError(404, f"no logged request {unknown[0]!r}: give the id of a chat completion this server "
                           "answered (the response's id)", param="request_id", code="request_not_found")
        ids = add_feedback(self.log.path, items)
        return [{"object": "feedback", "id": i, "request_id": item.request_id, "name": item.name}
                for i, item in zip(ids, items)]

    # --- streaming --------------------------------------------------------------------------------

    def streamed(self, ex: Exchange, cid: str, created: int, pieces: Iterator[str | Completion], first: Any,
                 include_usage: bool) -> Any:
        from starlette.responses import StreamingResponse

        assert ex.route is not None
        return StreamingResponse(self.events(ex, cid, created, pieces, first, include_usage),
                                 media_type="text/event-stream",
                                 headers={**route_headers(ex.route), "cache-control": "no-cache"})

    async def events(self, ex: Exchange, cid: str, created: int, pieces: Iterator[str | Completion], first: Any,
                     include_usage: bool) -> AsyncIterator[str]:
        """The role chunk, a chunk per text piece as the engine makes it, the finish reason, the usage
        chunk when asked for, ``[DONE]``; an error after the first chunk is an ``error`` event."""
        from starlette.concurrency import run_in_threadpool

        assert ex.route is not None
        label, status, error_type = ex.route.label, 200, None
        try:
            yield chunk(cid, created, label, {"role": "assistant", "content": ""}, None)
            item = first
            while item is not None and not isinstance(item, Completion):
                if ex.ttft_ms is None:
                    ex.ttft_ms = (time.perf_counter() - ex.started) * 1000
                yield chunk(cid, created, label, {"content": item}, None)
                item = await run_in_threadpool(next, pieces, None)
            if item is None:
                raise RuntimeError("the engine's stream ended without its completion")
            ex.done = item
            yield chunk(cid, created, label, {}, item.finish_reason)
            if include_usage:
                yield usage_chunk(cid, created, label, item)
            yield DONE
        except asyncio.CancelledError:  # the client went away mid-answer
            status, error_type = 499, "client_closed"
            raise
        except Exception as exc:
            error = as_api_error(exc)
            status, error_type = error.status, type(exc).__name__
            yield event(error.body())
        finally:
            await run_in_threadpool(getattr(pieces, "close", lambda: None))  # frees the row if still generating
            self.record(ex, status, error_type)
            self.release()

    # --- mirror traffic ---------------------------------------------------------------------------

    async def shadow(self, route: Route, request: GenerationRequest) -> None:
        """Send a copy to the mirrored slot when the draw says so; its answer is logged, never returned."""
        from starlette.concurrency import run_in_threadpool

        mirror = await run_in_threadpool(self.router.mirror, route)
        if mirror is None:
            return
        task = asyncio.get_running_loop().create_task(self._shadow(mirror, request))
        self.shadows.add(task)
        task.add_done_callback(self.shadows.discard)

    async def _shadow(self, route: Route, request: GenerationRequest) -> None:
        from starlette.concurrency import run_in_threadpool

        ex = Exchange(model=route.version.name, route=route, prompt=prompt_text(request.messages))
        try:
            await run_in_threadpool(self.describe, ex, request)
            model = await run_in_threadpool(self.engines.model, route.version, False)
            ex.done = await run_in_threadpool(model.complete, request)
            self.record(ex, 200, mirrored=True)
        except Exception as exc:
            self.record(ex, as_api_error(exc).status, type(exc).__name__, mirrored=True)

    # --- the log ----------------------------------------------------------------------------------

    def describe(self, ex: Exchange, request: GenerationRequest) -> None:
        """The prompt's shape and the routed version's answer check, for the log (in a worker thread:
        the first request for a version reads its data)."""
        ex.features = prompt_features(request.messages, ex.prompt)  # the messages' contents are text already
        if self.formats is not None and ex.route is not None:
            ex.check = self.formats.checker(ex.route.version)

    def record(self, ex: Exchange, status: int, error_type: str | None = None, mirrored: bool = False) -> None:
        route, done = ex.route, ex.done
        row = RequestRecord(
            request_id=ex.cid, model=ex.model or "", status=status, ts=ex.arrived,
            latency_ms=round((time.perf_counter() - ex.started) * 1000, 3),
            endpoint=route.version.name if route else None, slot=route.slot if route else None,
            model_version=(0 if route.base else route.version.version) if route else None,
            routing_reason=route.reason if route else None, mirrored=mirrored, error_type=error_type,
            ttft_ms=None if ex.ttft_ms is None else round(ex.ttft_ms, 3), queue_ms=done.queue_ms if done else None,
            prompt_tokens=done.prompt_tokens if done else None, completion_tokens=done.completion_tokens if done else None,
            finish_reason=done.finish_reason if done else None,
            prompt_sha256=prompt_sha256(ex.prompt) if ex.prompt else None,
            output_chars=len(done.text) if done else None,
            prompt_text=ex.prompt or None, output_text=done.text if done else None,
            **ex.features,
            **self.answer_fields(ex))
        if self.log is not None:
            self.log.append(row)  # the log keeps texts only with serve.log_content
        self.metrics.observe(row)

    @staticmethod
    def answer_fields(ex: Exchange) -> dict[str, Any]:
        if ex.done is None:
            return {}
        in_format, label = ex.check(ex.done.text) if ex.check else (None, None)
        return {"output_sha256": answer_sha256(ex.done.text), "answer_in_format": in_format, "answer_label": label}
