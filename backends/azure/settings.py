"""The keys of ``backends.azure``: everything Azure needs besides the common sections.

``train.epochs`` and ``train.batch_size`` are shared with the local backend; the keys here are the
ones only Azure has (the hyperparameter multiplier, seed and suffix, where the resource lives, what a
deployment costs). Defaults follow the reference: GA api-version ``2024-10-21``, a Standard
deployment of capacity 1, and no spending limit unless the file sets ``max_cost``.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ftp import redact

GA_API_VERSION = "2024-10-21"
V1 = "v1"
SUFFIX = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
Sku = Literal["Standard", "GlobalStandard", "DeveloperTier"]

# USD per 1M training tokens, by model-name prefix (longest prefix wins). The Azure price page renders
# client-side, so these could not be checked: they are the user's to confirm (docs/backends/azure.md).
DEFAULT_PRICES: dict[str, float] = {"gpt-4o-mini": 3.0, "gpt-4.1-mini": 5.0, "gpt-4.1-nano": 1.5,
                                    "gpt-4.1": 25.0, "gpt-4o": 25.0}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PollSettings(Strict):
    """How often to ask Azure for news; backoff grows the wait while nothing changes."""

    interval: float = Field(10.0, ge=0, description="seconds before the first repeat request")
    max_interval: float = Field(60.0, ge=0, description="the wait never grows past this")
    backoff: float = Field(1.5, ge=1.0, description="each unchanged poll multiplies the wait by this")
    timeout: float = Field(48 * 3600.0, gt=0, description="give up following (the job keeps running) after this")


class RetrySettings(Strict):
    """Transient failures (429, 5xx, connection reset) are retried within these bounds."""

    attempts: int = Field(8, ge=1, description="tries per request, the first included")
    base_delay: float = Field(1.0, ge=0, description="first backoff in seconds (doubles each retry, with jitter)")
    max_delay: float = Field(60.0, ge=0, description="cap of one wait (Retry-After included)")
    max_total: float = Field(300.0, ge=0, description="cap of all waits of one request together")


class DeploymentSettings(Strict):
    """The deployment the deploy step creates through the management plane."""

    name: str | None = Field(None, description="default: <register.name>-v<version>; with deploy.strategy "
                             "blue-green every version gets its own: <name>-v<version>")
    sku: Sku = "Standard"
    capacity: int = Field(1, gt=0)

    @field_validator("sku", mode="before")
    @classmethod
    def _sku_case(cls, value: object) -> object:
        """Azure accepts SKU names in any case (``developertier``); the file may too."""
        if isinstance(value, str):
            for name in ("Standard", "GlobalStandard", "DeveloperTier"):
                if value.lower() == name.lower():
                    return name
        return value


class EvaluationSettings(Strict):
    """Which deployments answer the test prompts of the evaluate step (base vs fine-tuned)."""

    base_deployment: str | None = Field(None, description="an existing deployment of the base model")
    fine_tuned: Literal["deploy", "none"] = Field(
        "deploy", description="deploy: a DeveloperTier deployment of the new model answers; none: the job's numbers only")
    sku: Sku = "DeveloperTier"
    capacity: int = Field(50, gt=0)
    temperature: float = Field(0.0, ge=0, le=2)


class AzureSettings(Strict):
    """``backends.azure`` (besides the common sections it may override, e.g. ``model.base``)."""

    kind: Literal["openai", "azureml"] = Field("openai", description="openai: Azure OpenAI managed fine-tuning; "
                                               "azureml: open models through azure-ai-ml")
    endpoint: str | None = Field(None, description="https://RESOURCE.openai.azure.com")
    api_version: str = Field(GA_API_VERSION, description="data-plane api-version, or v1 for the /openai/v1/ paths")
    method_body: bool | None = Field(None, description="send the preview `method` body; default: for previews and v1")
    auth: Literal["auto", "key", "entra"] = "auto"
    api_key_env: str | None = Field("AZURE_OPENAI_API_KEY", description="environment variable holding the API key")
    learning_rate_multiplier: float | None = Field(None, gt=0)
    seed: int | None = Field(None, description="default: train.seed")
    suffix: str | None = Field(None, description="up to 40 of a-z A-Z 0-9 - _; default: from the pipeline name")
    subscription_id: str | None = None
    resource_group: str | None = None
    account: str | None = Field(None, description="the Azure OpenAI (AI Services) account name")
    workspace: str | None = Field(None, description="kind azureml: the Azure ML workspace (AI Foundry hub project)")
    registry: str = Field("azureml", description="kind azureml: the model registry (Phi: azureml, Llama: azureml-meta)")
    model_label: str = Field("latest", description="kind azureml: the base model's label or version in the registry")
    management_endpoint: str = "https://management.azure.com"
    management_api_version: str | None = Field(None, description="ARM api-version; default: the SDK's own")
    deployment: DeploymentSettings = DeploymentSettings()
    allow_deprecated_base: bool = Field(False, description="fine-tune a base model Azure has closed to new "
                                        "customers (this subscription trained it before); see retirement.py")
    evaluation: EvaluationSettings = EvaluationSettings()
    max_cost: float | None = Field(None, ge=0, description="refuse to submit a job estimated above this (USD)")
    prices: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES),
                                     description="USD per 1M training tokens by model prefix (check them)")
    currency: str = "USD"
    poll: PollSettings = PollSettings()
    retry: RetrySettings = RetrySettings()

    @field_validator("endpoint", "management_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        return https_url(value).rstrip("/")

    @field_validator("api_key_env")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        """The file names the variable; a key pasted here would end up in the run directory and in git."""
        if value and (not ENV_NAME.fullmatch(value) or redact.looks_secret(value)):
            raise ValueError("must be the name of the environment variable that holds the key "
                             "(e.g. AZURE_OPENAI_API_KEY), not the key itself")
        return value

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, value: str | None) -> str | None:
        if value is not None and not SUFFIX.match(value):
            raise ValueError("must be 1-40 characters of a-z, A-Z, 0-9, - and _")
        return value

    def unset(self, *keys: str) -> list[str]:
        """Which of the resource-locating ``keys`` (subscription_id, account, workspace...) are not set."""
        return [k for k in keys if not getattr(self, k)]

    def uses_method_body(self) -> bool:
        """The preview and v1 surfaces take hyperparameters under ``method``; GA takes them at the top."""
        if self.method_body is not None:
            return self.method_body
        return self.api_version == V1 or self.api_version.endswith("-preview")

    def price_per_million(self, model: str) -> float | None:
        """Training price for ``model`` by its longest matching prefix (``gpt-4o-mini-2024-07-18``)."""
        matches = [p for p in self.prices if model.startswith(p)]
        return self.prices[max(matches, key=len)] if matches else None


def https_url(value: str) -> str:
    """An endpoint the API key may be sent to: https, or plain http to this machine only (a local fake or proxy)."""
    parsed = urlsplit(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError("must be a URL such as https://RESOURCE.openai.azure.com")
    if parsed.scheme == "http" and not _loopback(parsed.hostname):
        raise ValueError("http:// would send the API key and tokens in clear text; use https:// "
                         "(http is accepted only for localhost / 127.0.0.1 / ::1)")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_suffix(pipeline_name: str) -> str:
    """The pipeline name as Azure allows a suffix to be written."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", pipeline_name).strip("-") or "ftp"
    return cleaned[:40]
