"""Answers from an Azure endpoint: chat completions, one test prompt per request.

Two endpoints answer the same way: an Azure OpenAI deployment (``kind: openai``, through the data
plane) and an Azure ML serverless endpoint (``kind: azureml``: ``POST {scoring_uri}/v1/chat/completions``
with the endpoint's key in ``Authorization``, as Azure's sample does). Both go through ftp's ``Http``,
so 429s and 5xx are retried with ``Retry-After`` honoured.

Chat completions return text, not the loss of a given answer, so ``loss`` is None and the loss and
perplexity metrics are absent for Azure candidates (the job's own validation loss is in the train
step's metrics instead).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ftp.data.files import message_text
from ftp.types import Example, Message

from .dataplane import DataPlane
from .http import AzureError, Http
from .settings import RetrySettings

log = logging.getLogger("ftp.azure")


class _ChatAnswers:
    """What every chat-completions endpoint shares: one request per prompt, text back, no loss."""

    name = ""
    temperature = 0.0

    def _send(self, messages: list[Message], max_new_tokens: int) -> Any:
        raise NotImplementedError

    def answer(self, messages: list[Message], max_new_tokens: int) -> str:
        """The endpoint's answer; a prompt Azure's content filter blocks counts as an empty answer."""
        try:
            reply = self._send(messages, max_new_tokens)
        except AzureError as exc:
            if (exc.code or "").lower().replace("_", "") != "contentfilter":
                raise
            log.warning("%s: the content filter blocked a test prompt; counted as an empty answer", self.name)
            return ""
        choices = (reply.get("choices") if isinstance(reply, dict) else None) or [{}]
        return message_text((choices[0].get("message") or {}).get("content"))

    def generate(self, conversations: Sequence[list[Message]], max_new_tokens: int) -> list[str]:
        return [self.answer(list(c), max_new_tokens) for c in conversations]

    def loss(self, examples: Sequence[Example]) -> float | None:
        return None

    def count_tokens(self, text: str) -> int:
        from .tokens import count_text

        return count_text(text)


class ChatPredictor(_ChatAnswers):
    """An Azure OpenAI deployment that answers prompts (``generate``); it cannot score examples."""

    def __init__(self, plane: DataPlane, deployment: str, temperature: float = 0.0) -> None:
        self.plane = plane
        self.deployment = self.name = deployment
        self.temperature = temperature

    def _url_and_body(self, messages: list[Message], max_new_tokens: int) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"messages": messages, "max_tokens": max_new_tokens, "temperature": self.temperature}
        return self.plane.chat_completions(self.deployment, body)

    def _send(self, messages: list[Message], max_new_tokens: int) -> Any:
        path, body = self._url_and_body(messages, max_new_tokens)
        return self.plane.post(path, body)


class ServerlessPredictor(_ChatAnswers):
    """An Azure ML serverless endpoint that answers prompts with its key; it cannot score examples.

    ``key`` is asked for once, at the first request, and lives only in this object and the request
    headers: never in the run directory, a log or an error message.
    """

    def __init__(self, name: str, scoring_uri: str, key: Callable[[], str], retry: RetrySettings,
                 temperature: float = 0.0) -> None:
        self.name = name
        self.url = scoring_uri.rstrip("/") + "/v1/chat/completions"
        self.temperature = temperature
        self._key_source = key
        self._key: str | None = None
        self.http = Http(self._headers, retry)

    def _headers(self) -> dict[str, str]:
        if self._key is None:
            self._key = self._key_source()
        return {"Authorization": self._key}

    def _send(self, messages: list[Message], max_new_tokens: int) -> Any:
        body = {"messages": messages, "max_tokens": max_new_tokens, "temperature": self.temperature}
        return self.http.json("POST", self.url, json=body)
