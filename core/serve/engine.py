"""Answers from registered versions: each version's model loaded once through its backend's trainer
(the same ``Predictors`` evaluation uses), then asked greedily.

This slice answers one request at a time under a lock: no dynamic batching, no adapters sharing one
base model in memory, no sampling (temperature, top_p and seed are accepted and ignored).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftp.errors import FtpError
from ftp.eval.standalone import EvalContext, Predictors
from ftp.hooks import Hooks
from ftp.types import Message, ModelVersion, Predictor


class NotServable(FtpError):
    """A version whose backend gives no local predictor (HTTP 503)."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" or "length"
    prompt_tokens: int
    completion_tokens: int


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the earliest stop string (which is dropped, as OpenAI does), and whether one hit."""
    hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


class Engine:
    """Predictors per version, cached; generation serialised by one lock (a model in memory is not
    safe to call from several threads at once)."""

    def __init__(self, hooks: Hooks, ctx: EvalContext) -> None:
        self.predictors = Predictors(hooks, ctx)
        self._loaded: dict[tuple[str, int], Predictor] = {}
        self.lock = threading.Lock()

    def predictor(self, version: ModelVersion) -> Predictor:
        """The version's predictor, loaded on first use (under the lock, so two requests load it once)."""
        key = (version.name, version.version)
        if key not in self._loaded:
            predictor, why = self.predictors.load(f"{version.name}:{version.version}", version.model)
            if predictor is None:
                raise NotServable(f"{version.name}:{version.version} cannot be served here: {why}")
            self._loaded[key] = predictor
        return self._loaded[key]

    def complete(self, version: ModelVersion, messages: list[Message], max_tokens: int,
                 stop: Sequence[str] = ()) -> Completion:
        """One greedy answer, cut at ``stop``; ``length`` when the answer used every token allowed."""
        with self.lock:
            predictor = self.predictor(version)
            text = predictor.generate([messages], max_tokens)[0]
            used = count(predictor, text)
            prompt = count(predictor, "\n".join(str(m.get("content") or "") for m in messages))
        text, stopped = cut_at_stop(text, stop)
        finish = "stop" if stopped or used < max_tokens else "length"
        return Completion(text, finish, prompt, count(predictor, text) if stopped else used)


def count(predictor: Any, text: str) -> int:
    """Tokens in ``text`` by the model's tokenizer when the predictor has one, else words (cloud
    predictors without a tokenizer): the usage numbers are then an estimate."""
    counter = getattr(predictor, "count_tokens", None)
    return int(counter(text)) if callable(counter) else len(text.split())
