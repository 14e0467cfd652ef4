"""Credentials: an API key from the environment variable the file names, or azure-identity.

The key is read from the environment when a request is made and lives only in request headers:
nothing here is logged, stored in the run directory or put into an error message. Entra ID tokens
come from ``DefaultAzureCredential`` (environment, workload/managed identity, Azure CLI, ...), with
the data-plane scope for Azure OpenAI calls and the management scope for deployments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ftp.errors import UserError

from .settings import AzureSettings

DATA_PLANE_SCOPE = "https://cognitiveservices.azure.com/.default"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"

_credential: Any = None


def default_credential() -> Any:
    """One ``DefaultAzureCredential`` per process: it caches tokens, and probing the chain is slow."""
    global _credential
    if _credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise UserError("azure-identity is not installed; pip install 'ftp[azure]' "
                            "(or set backends.azure.api_key_env to use an API key)") from None
        _credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    return _credential


def reset_credential() -> None:
    """Forget the cached credential (tests that change the environment)."""
    global _credential
    _credential = None


def api_key(settings: AzureSettings) -> str | None:
    """The key from ``api_key_env``, when that variable is set and not empty."""
    if settings.auth == "entra" or not settings.api_key_env:
        return None
    return os.environ.get(settings.api_key_env) or None


def check_auth(settings: AzureSettings) -> str:
    """Which auth will be used ('key' or 'entra'); a UserError now if none can work."""
    if api_key(settings):
        return "key"
    if settings.auth == "key":
        raise UserError(f"backends.azure.auth is key but ${settings.api_key_env or 'api_key_env'} is not set; "
                        f"export {settings.api_key_env or 'AZURE_OPENAI_API_KEY'}=... or use auth: entra")
    try:
        import azure.identity  # noqa: F401
    except ImportError:
        raise UserError(f"no API key in ${settings.api_key_env} and azure-identity is not installed; "
                        "pip install 'ftp[azure]' or export the key") from None
    return "entra"


def data_plane_headers(settings: AzureSettings) -> Callable[[], dict[str, str]]:
    """Headers for every data-plane request; a token is fetched per request (the credential caches it)."""
    if check_auth(settings) == "key":
        env = settings.api_key_env or ""
        return lambda: {"api-key": os.environ.get(env, "")}
    credential = default_credential()

    def bearer() -> dict[str, str]:
        try:
            token = credential.get_token(DATA_PLANE_SCOPE).token
        except Exception as exc:  # noqa: BLE001 - azure-identity raises several types; each becomes one line
            raise UserError(f"Entra ID sign-in for {DATA_PLANE_SCOPE} failed: {first_line(exc)}; "
                            "run `az login`, set AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
                            f"or export {settings.api_key_env or 'AZURE_OPENAI_API_KEY'}") from None
        return {"Authorization": f"Bearer {token}"}

    return bearer


def first_line(exc: BaseException) -> str:
    """The first line of an SDK error, which is the part a user can act on (the rest is a troubleshooting URL)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
