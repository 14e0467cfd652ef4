"""``ftp serve``: the OpenAI-compatible server over the deployed versions (FastAPI and uvicorn are
imported only when the command runs, so ``ftp --help`` stays light)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from ftp.errors import UserError


def _sources(pipeline: str | None, registry: str | None, deployments: str | None,
             hooks: Any) -> tuple[Any, dict[str, Any], Any, Path]:
    """(settings, backend settings, registry, deployments file) from the pipeline file or --registry."""
    from ftp.config import DEFAULT_BACKEND
    from ftp.config.settings import PipelineSettings

    if pipeline is None and registry is None:
        raise UserError("ftp serve needs -p pipeline.yaml (its register.* settings) or --registry PATH")
    if pipeline is not None:
        from ftp.config.pipeline_file import load_pipeline

        loaded = load_pipeline(pipeline, DEFAULT_BACKEND, hooks.catalog())
        settings, backend_settings = loaded.settings, loaded.backend_settings
    else:
        settings, backend_settings = PipelineSettings.model_validate({"name": "serve", "model": {"base": "none"}}), {}
    reg = settings.registration
    kind, location = (reg.registry, reg.location()) if registry is None else ("sqlite", Path(registry))
    store = Path(deployments) if deployments else settings.deploy.store
    return settings, backend_settings, hooks.model_registry(kind, location), store


@click.command("serve")
@click.option("-p", "--pipeline", type=click.Path(exists=True, dir_okay=False), help="pipeline file (register.*, deploy.store)")
@click.option("--registry", type=click.Path(), help="a SQLite registry file instead of the pipeline's")
@click.option("--deployments", type=click.Path(), help="the deployment records (default: deploy.store)")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to bind (loopback by default)")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--token-env", metavar="VAR", help="require 'Authorization: Bearer $VAR' on /v1")
def serve(pipeline: str | None, registry: str | None, deployments: str | None, host: str, port: int,
          token_env: str | None) -> None:
    """Serve the deployed versions over an OpenAI-compatible API (POST /v1/chat/completions)."""
    from ftp.hooks import default_hooks
    from ftp.types import ServeContext

    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise UserError(f"--token-env {token_env}: the variable is not set or empty; export it first")
    hooks = default_hooks()
    settings, _, reg, store = _sources(pipeline, registry, deployments, hooks)
    serve_settings = settings.serve.model_dump(mode="json")

    def context(backend: str) -> ServeContext:
        """The engine's settings: the pipeline file read for ``backend``, so each engine gets its own block."""
        if pipeline is None:
            return ServeContext(serve=serve_settings)
        from ftp.config.pipeline_file import load_pipeline

        return ServeContext(serve=serve_settings,
                            backend_settings=load_pipeline(pipeline, backend, hooks.catalog()).backend_settings)

    from ftp.monitor.reference import Formats

    formats = Formats(settings.evaluate, settings.registration.artifacts)
    app = build_app(hooks, settings.serve, context, reg, store, token, formats,
                    _watcher(settings, pipeline, hooks, store))
    import uvicorn

    click.echo(f"ftp serve: http://{host}:{port}/v1 (deployments {store}, registry {reg.location}, "
               f"request log {settings.serve.log_path(store)})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


def _watcher(settings: Any, pipeline: str | None, hooks: Any, store: Path) -> Any:
    """The automatic rollback of ``deploy.auto_rollback`` (None when the file has none)."""
    if settings.deploy.auto_rollback is None:
        return None
    from ftp.cli.deploy import Where, appliers
    from ftp.monitor.watch import RollbackWatcher

    where = Where(store, settings, pipeline, None, hooks)
    return RollbackWatcher(store, settings.serve.log_path(store), settings.deploy.auto_rollback,
                           apply_for=lambda name: appliers(where, name))


def build_app(hooks: Any, serve_settings: Any, context: Any, registry: Any, store: Path, token: str | None,
              formats: Any = None, watcher: Any = None) -> Any:
    """The app over the deployments in ``store``: router, engines, request log and metrics; ``context``
    gives each backend's engine its ServeContext (a ServeContext: the same for all); ``formats``
    (``ftp.monitor.reference.Formats``) checks each answer's format for the log."""
    from ftp.serve.app import create_app
    from ftp.serve.engine import Engines
    from ftp.serve.handling import Service
    from ftp.serve.metrics import ServeMetrics
    from ftp.serve.request_log import RequestLog
    from ftp.serve.routing import Router

    s = serve_settings
    log = RequestLog(s.log_path(store), log_content=s.log_content, retention_days=s.retention_days,
                     max_rows=s.max_log_rows)
    contexts = context if callable(context) else (lambda backend: context)
    service = Service(Router(registry, store), Engines(hooks, contexts, store), s, token, log, ServeMetrics(),
                      formats)
    if watcher is not None:
        watcher.flush = log.flush
    return create_app(service, watcher)
