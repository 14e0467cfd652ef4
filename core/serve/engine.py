"""The served versions: each loaded once, on its first request, by its backend's serving engine
(``ftp_serving_engine``), which may share weights between them (the local engine keeps one base model
for every adapter on it).

Which backend serves a version is what its deployer recorded in ``deploy.store`` (an Azure deployment),
else the version's own backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ftp.errors import FtpError, UserError
from ftp.hooks import Hooks
from ftp.types import ModelRef, ModelVersion, ServeContext, ServedModel, ServingEngine


class NotServable(FtpError):
    """A version this server cannot load (HTTP 503, with the reason)."""


def base_of(version: ModelVersion) -> ModelVersion:
    """The version's base model as a version of its own (``NAME:base``), on the same backend."""
    return version.model_copy(update={"model": ModelRef(kind="base", base=version.base_model, backend=version.backend),
                                      "version": 0})


class Engines:
    """Serving engines per backend and served models per version, loaded on first use."""

    def __init__(self, hooks: Hooks, context: Callable[[str], ServeContext], deployments: Path) -> None:
        """``context(backend)``: the serve settings and that backend's own settings block."""
        self.hooks, self.context, self.deployments = hooks, context, Path(deployments)
        self.engines: dict[str, ServingEngine] = {}
        self.served: dict[tuple[str, int, bool], ServedModel] = {}
        self.locks: dict[tuple[str, int, bool], threading.Lock] = {}
        self.guard = threading.Lock()

    def model(self, version: ModelVersion, base: bool = False) -> ServedModel:
        """The served model of ``version`` (``base``: its base model); NotServable when it cannot be."""
        key = (version.name, version.version, base)
        if key in self.served:
            return self.served[key]
        with self.guard:
            lock = self.locks.setdefault(key, threading.Lock())
        with lock:  # one load per version, while other versions keep answering
            if key not in self.served:
                self.served[key] = self._load(base_of(version) if base else version, version)
        return self.served[key]

    def _load(self, version: ModelVersion, deployed: ModelVersion) -> ServedModel:
        from ftp.deploy.slots import endpoint_of

        endpoint = endpoint_of(self.deployments, deployed.name, deployed.version)
        backend = endpoint.backend if endpoint is not None else version.backend
        label = f"{deployed.name}:{'base' if version.version == 0 else deployed.version}"
        try:
            with self.guard:
                if backend not in self.engines:
                    self.engines[backend] = self.hooks.serving_engine(backend, self.context(backend))
                engine = self.engines[backend]
            return engine.load(version, endpoint if version.version else None)
        except UserError as exc:
            raise NotServable(f"{label} cannot be served here: {exc}") from None

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
