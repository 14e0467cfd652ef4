"""Answers from an Azure deployment: chat completions, one test prompt per request.

Chat completions return text, not the loss of a given answer, so ``loss`` is None and the loss and
perplexity metrics are absent for Azure candidates (the job's own validation loss is in the train
step's metrics instead).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from ftp.data.files import message_text
from ftp.types import Example, Message

from .dataplane import DataPlane
from .http import AzureError
from .settings import V1

log = logging.getLogger("ftp.azure")


class ChatPredictor:
    """A deployment that answers prompts (``generate``); it cannot score examples."""

    def __init__(self, plane: DataPlane, deployment: str, temperature: float = 0.0) -> None:
        self.plane = plane
        self.deployment = deployment
        self.temperature = temperature
        self._encoding: Any = None

    def _url_and_body(self, messages: list[Message], max_new_tokens: int) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_new_tokens, "temperature": self.temperature}
        if self.plane.settings.api_version == V1:
            return "chat/completions", {**body, "model": self.deployment}
        return f"deployments/{self.deployment}/chat/completions", body

    def answer(self, messages: list[Message], max_new_tokens: int) -> str:
        """The deployment's answer; a prompt Azure's content filter blocks counts as an empty answer."""
        path, body = self._url_and_body(messages, max_new_tokens)
        try:
            reply = self.plane.post(path, body)
        except AzureError as exc:
            if (exc.code or "").lower().replace("_", "") != "contentfilter":
                raise
            log.warning("%s: the content filter blocked a test prompt; counted as an empty answer", self.deployment)
            return ""
        choices = reply.get("choices") or [{}]
        return message_text((choices[0].get("message") or {}).get("content"))

    def generate(self, conversations: Sequence[list[Message]], max_new_tokens: int) -> list[str]:
        return [self.answer(list(c), max_new_tokens) for c in conversations]

    def loss(self, examples: Sequence[Example]) -> float | None:
        return None

    def count_tokens(self, text: str) -> int:
        if self._encoding is None:
            from .tokens import tiktoken_counter

            counter = tiktoken_counter()
            self._encoding = counter.encoding if counter else False
        if self._encoding:
            return len(self._encoding.encode(text, disallowed_special=()))
        return math.ceil(len(text) / 4)
