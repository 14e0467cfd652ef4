"""Where data-plane requests go: ``{endpoint}/openai/{path}?api-version=...`` or ``{endpoint}/openai/v1/{path}``."""

from __future__ import annotations

from typing import Any

from ftp.errors import UserError

from .auth import data_plane_headers
from .http import Clock, Http
from .settings import V1, AzureSettings


class DataPlane:
    """The Azure OpenAI resource of a run: URLs in the configured style, and the retrying session."""

    def __init__(self, settings: AzureSettings, clock: Clock | None = None) -> None:
        if not settings.endpoint:
            raise UserError("backends.azure.endpoint is not set; export AZURE_OPENAI_ENDPOINT="
                            "https://RESOURCE.openai.azure.com (the file reads ${AZURE_OPENAI_ENDPOINT})")
        self.settings = settings
        self.endpoint = settings.endpoint
        self.http = Http(data_plane_headers(settings), settings.retry, clock)

    def chat_completions(self, deployment: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The path and body that ask ``deployment`` for a chat completion: the v1 API names the
        deployment as the body's ``model``, dated api-versions in the path."""
        if self.settings.api_version == V1:
            return "chat/completions", {**body, "model": deployment}
        return f"deployments/{deployment}/chat/completions", body

    def url(self, path: str) -> str:
        prefix = "/openai/v1/" if self.settings.api_version == V1 else "/openai/"
        return self.endpoint + prefix + path.lstrip("/")

    def params(self, **extra: Any) -> dict[str, Any]:
        """Query parameters: the api-version (not on v1) plus ``extra`` that are not None."""
        base = {} if self.settings.api_version == V1 else {"api-version": self.settings.api_version}
        return {**base, **{k: v for k, v in extra.items() if v is not None}}

    def get(self, path: str, **params: Any) -> Any:
        return self.http.json("GET", self.url(path), params=self.params(**params))

    def post(self, path: str, body: Any = None, *, retry_ambiguous: bool = True, **kwargs: Any) -> Any:
        return self.http.json("POST", self.url(path), params=self.params(), json=body,
                              retry_ambiguous=retry_ambiguous, **kwargs)

    def raw(self, path: str) -> bytes:
        return self.http.request("GET", self.url(path), params=self.params()).content
