"""Azure ML's vocabulary as ftp speaks it: job statuses, hyperparameters as strings, registry model ids,
and azure-core errors as ftp's one-line errors. Pure functions (the error translation imports azure-core
only when called), tested directly in tests/azure/test_azureml.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from ftp.errors import FtpError, StepFailed, UserError

TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
"""Job statuses after which nothing changes (the sample's loop stops on these)."""

FIRST_PARTY_REGISTRY = "azureml"
"""Microsoft's own models (Phi) live here and need no marketplace subscription."""

TRAIN_TO_AZUREML = {
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "learning_rate": "learning_rate",
}
"""ftp's ``train`` keys and the names Azure ML's fine-tuning component reads them under."""

_NORMALISED = {
    "notstarted": "queued",
    "created": "queued",
    "queued": "queued",
    "starting": "queued",
    "provisioning": "queued",
    "preparing": "queued",
    "running": "running",
    "finalizing": "running",
    "cancelrequested": "cancelling",
    "paused": "paused",
    "completed": "succeeded",
    "failed": "failed",
    "canceled": "cancelled",
    "notresponding": "unknown",
    "unknown": "unknown",
}

_REGISTRY_MODEL = re.compile(r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)(/versions/[^/]+)?$")


# --- pure helpers ---------------------------------------------------------------------------------


def normalise(raw: str | None) -> str:
    """Azure ML's job status in the words the rest of ftp uses for every backend.

    queued, running, cancelling, paused, succeeded, failed, cancelled, or unknown (NotResponding,
    Unknown and anything newer than this table: the job may still finish, so it is not terminal).
    """
    key = (raw or "").replace(" ", "").replace("_", "").lower()
    return _NORMALISED.get(key, "unknown")


def is_terminal(raw: str | None) -> bool:
    """Completed, Failed or Canceled, whatever the case the SDK returned it in."""
    return normalise(raw) in {"succeeded", "failed", "cancelled"}


def as_hyperparameter(value: object) -> str:
    """The service reads every hyperparameter as a string; floats are written positionally.

    ``2e-05`` would round-trip too, but ``0.00002`` is what Azure's own samples send, and the
    exact decimal of the float's shortest repr keeps what the user wrote.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = format(Decimal(repr(value)), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def string_hyperparameters(values: Mapping[str, object]) -> dict[str, str]:
    """Every value as a string, unset ones (None) left out so the service's defaults apply."""
    return {key: as_hyperparameter(value) for key, value in values.items() if value is not None}


def hyperparameters_from_train(train: Mapping[str, object]) -> dict[str, str]:
    """ftp's ``train.epochs/batch_size/learning_rate`` under Azure ML's names, as strings.

    Keys the fine-tuning component would not understand (lora, method, ...) are dropped rather
    than sent, because an unknown hyperparameter fails the job after it has queued.
    """
    mapped = {TRAIN_TO_AZUREML[key]: value for key, value in train.items() if key in TRAIN_TO_AZUREML}
    return string_hyperparameters(mapped)


def needs_marketplace_subscription(model_id: str) -> bool:
    """Third-party registry models (Llama, Mistral) are sold through the marketplace; Phi is not."""
    match = _REGISTRY_MODEL.match(model_id)
    return match is not None and match.group("registry") != FIRST_PARTY_REGISTRY


def unversioned(model_id: str) -> str:
    """A marketplace subscription names the model, not one of its versions."""
    return re.sub(r"/versions/[^/]+$", "", model_id)


def _one_line(text: str, limit: int = 300) -> str:
    """Azure messages run over several lines; the CLI prints one."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def translate_error(exc: Exception, *, step: str, action: str, missing: str, scope: str) -> FtpError:
    """An azure-core / azure-ai-ml failure as one line that says what failed and what to do.

    Bad sign-in, a missing role and a missing model or job are the user's to fix (UserError, exit 2);
    quota and service-side failures stop the step (StepFailed).
    """
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
    )

    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = str(getattr(error, "code", None) or "")
    message = _one_line(getattr(error, "message", None) or getattr(exc, "message", None) or str(exc))
    what = f"Azure ML {action} failed"
    if isinstance(exc, ClientAuthenticationError) or status == 401:
        return UserError(f"{what}: not signed in or the token was refused ({message}); run `az login` or set "
                         "AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET for DefaultAzureCredential")
    if status == 403 or code in {"AuthorizationFailed", "Forbidden"}:
        return UserError(f"{what}: the signed-in identity lacks a role on {scope} ({message}); ask an owner to "
                         "grant it 'AzureML Data Scientist' (or Contributor) there")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return UserError(f"{what}: {missing} ({message})")
    if status == 429 or "quota" in code.lower() or "quota" in message.lower():
        return StepFailed(step, f"{what}: quota exhausted ({code or status}: {message}); request more quota for "
                                "this model in the workspace's region or choose another region")
    if isinstance(exc, HttpResponseError):
        return StepFailed(step, f"{what}: HTTP {status} {code}: {message}; retry later or check the job in "
                                "Azure ML studio")
    if isinstance(exc, ServiceRequestError):
        return StepFailed(step, f"{what}: Azure could not be reached ({message}); check the network or proxy")
    return UserError(f"{what}: {message}")
