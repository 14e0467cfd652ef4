"""What ``ftp serve`` asks of a backend: one generation request in, one completion (or its pieces) out.

A backend's serving engine (``ftp_serving_engine``) loads each deployed version once and answers
requests for it; the server owns routing, limits, the request log and metrics, so an engine only
generates. The local engine shares one base model across every adapter; the Azure one forwards to the
version's own deployment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import Field

from ftp.values.base import Message, Value
from ftp.values.registry import ModelVersion, Provisioned


class GenerationRequest(Value):
    """One chat completion to produce. ``temperature`` 0 (the default) is greedy decoding; ``seed`` makes
    sampling repeatable for one request whatever else is batched with it, where the engine can."""

    messages: list[Message]
    max_tokens: int = Field(ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)
    # seconds the engine may spend on it; past that it frees the request's place and raises TimeoutError
    timeout_s: float | None = Field(None, gt=0)


class Completion(Value):
    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int  # with the chat template's tokens, as the model saw the prompt
    completion_tokens: int
    queue_ms: float | None = None  # time spent waiting for a batch, where the engine batches


class ServedModel(Protocol):
    """One deployed version, ready to answer; safe to call from several threads at once (an engine that
    batches collects concurrent calls into one forward pass)."""

    label: str  # what answers, e.g. "ticket-triage:3 on transformers (cuda, bfloat16)"

    def complete(self, request: GenerationRequest) -> Completion: ...

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        """Text pieces as they are generated, then the whole ``Completion`` as the last item."""


class ServeContext(Value):
    """What an engine may need besides the version: the pipeline's ``serve`` and backend settings."""

    serve: dict[str, Any] = Field(default_factory=dict)  # ServeSettings, as plain data
    backend_settings: dict[str, Any] = Field(default_factory=dict)
    work_dir: Path = Path(".ftp/serve")


class ServingEngine(Protocol):
    """What ``ftp_serving_engine`` returns for its backend: loads versions (and may share weights between
    them), answers through the ``ServedModel`` it hands back, and frees everything on ``close``."""

    name: str

    def load(self, version: ModelVersion, endpoint: Provisioned | None) -> ServedModel:
        """Make ``version`` servable (``endpoint``: what its deployer provisioned, if anything); raise
        ``ftp.errors.UserError`` with the reason when it cannot be served here."""

    def close(self) -> None: ...
