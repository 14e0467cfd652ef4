"""Credentials: an API key from the environment variable the file names, or azure-identity.

The key is read from the environment when a request is made and lives only in request headers:
nothing here is logged, stored in the run directory or put into an error message. Entra ID tokens
come from ``DefaultAzureCredential`` (environment, workload/managed identity, Azure CLI, ...), with
the data-plane scope for Azure OpenAI calls and the management scope for deployments.

azure-identity fails in several ways (a ValueError when ``AZURE_CLIENT_ID`` is empty or
``AZURE_TENANT_ID`` malformed, ClientAuthenticationError / CredentialUnavailableError when no
credential signs in); :func:`default_credential` and the credential it returns turn each into the
same one-line UserError (exit 2) that names the variable and the fix, with secrets masked.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ftp.errors import UserError

from .settings import AzureSettings

DATA_PLANE_SCOPE = "https://cognitiveservices.azure.com/.default"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"

SERVICE_PRINCIPAL_VARS = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
SECRET_VARS = ("AZURE_CLIENT_SECRET", "AZURE_PASSWORD", "AZURE_CLIENT_CERTIFICATE_PASSWORD")
TENANT_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.")
"""What azure-identity accepts in a tenant id (a GUID, or a domain such as contoso.onmicrosoft.com)."""

_credential: Any = None


def default_credential(scope: str | None = None) -> Any:
    """One ``DefaultAzureCredential`` per process: it caches tokens, and probing the chain is slow.

    Built from the environment as it is now (no network call); an empty or malformed variable raises
    the one-line sign-in error here, before the first request that would need a token. ``scope`` is
    only for that message: the data plane can also be reached with an API key, the management plane not.
    """
    global _credential
    if _credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise UserError("azure-identity is not installed; pip install 'ftp[azure]' "
                            "(or set backends.azure.api_key_env to use an API key)") from None
        _quiet_sdk_logs()
        try:
            inner = DefaultAzureCredential(exclude_interactive_browser_credential=True)
        except Exception as exc:  # noqa: BLE001 - ValueError today; any construction failure is the environment's
            raise sign_in_error(exc, scope) from None
        _credential = SignInGuard(inner)
    return _credential


def reset_credential() -> None:
    """Forget the cached credential (tests that change the environment)."""
    global _credential
    _credential = None


class SignInGuard:
    """A TokenCredential around azure-identity's: every token failure becomes ftp's sign-in UserError.

    SDK clients (ARM, azure-ai-ml) call ``get_token`` / ``get_token_info`` themselves inside their
    pipelines; raising the UserError there carries it out of them unchanged (it is no AzureError,
    so neither their retries nor ftp's ARM error translation take it for a service failure).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        try:
            return self.inner.get_token(*scopes, **kwargs)
        except Exception as exc:  # noqa: BLE001 - azure-identity raises several types; each becomes one line
            raise sign_in_error(exc, scopes[0] if scopes else None) from None

    def get_token_info(self, *scopes: str, **kwargs: Any) -> Any:
        try:
            return self.inner.get_token_info(*scopes, **kwargs)
        except Exception as exc:  # noqa: BLE001
            raise sign_in_error(exc, scopes[0] if scopes else None) from None

    def close(self) -> None:
        self.inner.close()

    def __enter__(self) -> "SignInGuard":
        self.inner.__enter__()
        return self

    def __exit__(self, *args: Any) -> None:
        self.inner.__exit__(*args)


def sign_in_error(exc: BaseException, scope: str | None = None) -> UserError:
    """One line: what is wrong with the sign-in (a named variable when the environment is at fault) and the fix.

    The SDK's own text is used only when the environment looks right, with every secret's value masked.
    """
    where = f"Entra ID sign-in for {scope}" if scope else "Entra ID sign-in"
    env = environment_problem()
    if env:
        problem, fix = env, f"or unset {', '.join(SERVICE_PRINCIPAL_VARS)} to sign in with `az login`"
    else:
        problem = mask_secrets(sdk_reason(exc))
        fix = f"run `az login`, or set {', '.join(SERVICE_PRINCIPAL_VARS)} to a service principal's values"
    if scope == DATA_PLANE_SCOPE:
        fix += ", or use an API key (backends.azure.auth: key, e.g. export AZURE_OPENAI_API_KEY)"
    return UserError(f"{where} failed: {problem}; {fix}")


WHAT_EACH_HOLDS = {"AZURE_TENANT_ID": "the directory (tenant) id", "AZURE_CLIENT_ID": "the application (client) id",
                   "AZURE_CLIENT_SECRET": "a client secret of that application"}


def environment_problem() -> str | None:
    """The service-principal variable that is set but unusable, and what to set it to; None when they look right."""
    for var in SERVICE_PRINCIPAL_VARS:
        if var in os.environ and not os.environ[var].strip():
            return f"${var} is set but empty; set it to {WHAT_EACH_HOLDS[var]}"
    tenant = os.environ.get("AZURE_TENANT_ID", "")
    if tenant and not set(tenant) <= TENANT_CHARACTERS:
        return (f"$AZURE_TENANT_ID {tenant!r} is not a tenant id; set it to the directory (tenant) id, a GUID "
                "or a domain such as contoso.onmicrosoft.com")
    return None


def sdk_reason(exc: BaseException) -> str:
    """The line of an azure-identity error a user can act on.

    DefaultAzureCredential's message starts with a generic sentence and lists each credential it tried;
    when a service principal is configured, the EnvironmentCredential line says why it failed.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if all(os.environ.get(v) for v in SERVICE_PRINCIPAL_VARS):
        for line in lines:
            if line.startswith("EnvironmentCredential:"):
                return _shorten(line)
    return _shorten(lines[0]) if lines else type(exc).__name__


def mask_secrets(text: str) -> str:
    """``text`` with the value of every secret variable replaced, whatever the SDK put in its message."""
    for var in SECRET_VARS:
        value = os.environ.get(var, "")
        if len(value) >= 4:
            text = text.replace(value, f"${var}")
    return text


def _shorten(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quiet_sdk_logs() -> None:
    """azure-identity logs its failures at WARNING over several lines; with no logging set up, Python's
    last-resort handler would print them to stderr next to ftp's one line. A NullHandler stops that,
    and handlers a user configures still receive the records (they propagate as before)."""
    import logging

    for name in ("azure.identity", "msal"):
        logger = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
            logger.addHandler(logging.NullHandler())


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
    credential = default_credential(DATA_PLANE_SCOPE)

    def bearer() -> dict[str, str]:
        return {"Authorization": f"Bearer {credential.get_token(DATA_PLANE_SCOPE).token}"}

    return bearer


def first_line(exc: BaseException) -> str:
    """The first line of an SDK error, which is the part a user can act on (the rest is a troubleshooting URL)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
