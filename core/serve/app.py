"""The OpenAI-compatible HTTP API: ``POST /v1/chat/completions`` (plain and streamed), ``GET /v1/models``,
``POST /v1/feedback``, ``GET /health``, ``GET /metrics``. FastAPI is imported only here, and this module only by ``ftp serve``.

The endpoints' behaviour is ``ftp.serve.handling.Service``; this module only wires it to routes and
turns every error, including FastAPI's own, into OpenAI's ``{"error": {...}}`` shape.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations (``Request``) at
# definition time, and they are imported inside ``create_app``.
from typing import Any

from ftp.serve.handling import Service
from ftp.serve.protocol import ApiError, check_token


def create_app(service: Service, watcher: Any = None) -> Any:
    """The FastAPI app over ``service``; the engines and the request log close with the app, and
    ``watcher`` (``ftp.monitor.watch.RollbackWatcher``) runs while it serves."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        if watcher is not None:
            watcher.start()
        yield
        if watcher is not None:
            watcher.stop()
        for task in list(service.shadows):
            task.cancel()
        service.engines.close()
        if service.log is not None:
            service.log.close()

    app = FastAPI(title="ftp serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

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
    async def health() -> dict[str, Any]:
        return {"status": "ok", "in_flight": service.in_flight}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        check_token(request.headers.get("authorization"), service.token)
        body, content_type = service.metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        check_token(request.headers.get("authorization"), service.token)
        return {"object": "list", "data": await run_in_threadpool(service.router.models)}

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Any:
        return await service.feedback(request.headers, request.body)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await service.chat(request.headers, request.body)

    return app
