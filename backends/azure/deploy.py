"""Deployments through the management plane (ARM), with azure-mgmt-cognitiveservices.

The SDK runs on azure-core's requests transport and follows ARM's long-running operation itself
(``Azure-AsyncOperation``, ``Location`` or re-reading ``provisioningState``). What ftp adds: the
settings checked before any call, the Entra credential with the management scope, and ARM errors
(``InsufficientQuota`` and friends) turned into one line that says what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ftp.errors import StepFailed, UserError

from .auth import default_credential, first_line
from .settings import AzureSettings, Sku

FIXES: dict[str, str] = {
    "insufficientquota": "lower backends.azure.deployment.capacity, delete an unused deployment, or request more "
                         "quota for this model and SKU (Azure AI Foundry portal: Quotas)",
    "authorizationfailed": "give the identity the 'Cognitive Services Contributor' role on the account",
    "resourcenotfound": "check backends.azure.subscription_id, resource_group and account",
    "resourcegroupnotfound": "check backends.azure.resource_group",
    "deploymentmodelnotsupported": "this model/SKU pair cannot be deployed here; try another "
                                   "backends.azure.deployment.sku (Standard, GlobalStandard, DeveloperTier)",
    "invalidresourceproperties": "check backends.azure.deployment (sku, capacity) against the model's limits",
}


@dataclass(frozen=True)
class AzureDeployment:
    name: str
    model: str
    sku: str
    capacity: int
    endpoint: str
    state: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_settings(settings: AzureSettings) -> None:
    missing = settings.unset("subscription_id", "resource_group", "account")
    if missing:
        raise UserError(f"backends.azure: {', '.join(missing)} not set; a deployment needs the subscription, "
                        "resource group and account of the Azure OpenAI resource (see docs/backends/azure.md)")


def management_client(settings: AzureSettings) -> Any:
    try:
        from azure.mgmt.cognitiveservices import CognitiveServicesManagementClient
    except ImportError:
        raise UserError("azure-mgmt-cognitiveservices is not installed; pip install 'ftp[azure]'") from None
    kwargs: dict[str, Any] = {
        "retry_total": settings.retry.attempts - 1, "retry_backoff_factor": settings.retry.base_delay,
        "retry_backoff_max": settings.retry.max_delay}
    if settings.management_api_version:
        kwargs["api_version"] = settings.management_api_version
    return CognitiveServicesManagementClient(default_credential(), settings.subscription_id or "",
                                             base_url=settings.management_endpoint, **kwargs)


def deployment_endpoint(settings: AzureSettings, name: str) -> str:
    return f"{settings.endpoint or ''}/openai/deployments/{name}"


def arm_message(exc: Exception, name: str) -> str:
    """One line: which deployment, ARM's code and message, and the fix for the codes we know."""
    err = getattr(exc, "error", None)
    code = str(getattr(err, "code", "") or "")
    message = " ".join((str(getattr(err, "message", "") or "") or first_line(exc)).split())
    fix = FIXES.get(code.lower())
    return (f"Azure deployment {name!r} failed: {code or type(exc).__name__}: {message}"
            + (f"; fix: {fix}" if fix else ""))


def create_or_update(settings: AzureSettings, name: str, model: str, sku: Sku, capacity: int,
                     step: str = "deploy") -> AzureDeployment:
    """PUT the deployment and follow its long-running operation to ``Succeeded``."""
    check_settings(settings)
    from azure.core.exceptions import AzureError as SdkError
    from azure.core.exceptions import ClientAuthenticationError
    from azure.mgmt.cognitiveservices.models import (
        Deployment,
        DeploymentModel,
        DeploymentProperties,
    )
    from azure.mgmt.cognitiveservices.models import Sku as SkuModel

    client = management_client(settings)
    body = Deployment(sku=SkuModel(name=sku, capacity=capacity),
                      properties=DeploymentProperties(model=DeploymentModel(format="OpenAI", name=model, version="1")))
    try:
        poller = client.deployments.begin_create_or_update(settings.resource_group, settings.account, name, body,
                                                           polling_interval=settings.poll.interval)
        result = poller.result()
    except ClientAuthenticationError as exc:  # ARM refused the token (401): the sign-in is the user's to fix
        raise UserError(f"{arm_message(exc, name)}; sign in to the subscription's tenant: run `az login` "
                        "(or set AZURE_TENANT_ID to that tenant)") from None
    except SdkError as exc:
        raise StepFailed(step, arm_message(exc, name)) from None
    state = str(getattr(result.properties, "provisioning_state", "") or "")
    if state.lower() != "succeeded":
        raise StepFailed(step, f"Azure deployment {name!r} ended {state or 'without a state'}; "
                         "see the deployment in the Azure AI Foundry portal")
    return AzureDeployment(name=name, model=model, sku=sku, capacity=capacity,
                           endpoint=deployment_endpoint(settings, name), state=state)


def name_for(settings: AzureSettings, version: Any, strategy: str = "replace") -> str:
    """The deployment of a registered version. ``replace``: ``backends.azure.deployment.name`` (the one
    deployment is updated in place), else ``<register.name>-v<version>``. ``blue-green``: always one per
    version, ``<deployment.name>-v<version>`` (or ``<register.name>-v<version>``), because the live
    version must keep answering beside the new one: with one name the PUT would replace it."""
    if strategy == "blue-green":
        return deployment_name(f"{settings.deployment.name or version.name}-v{version.version}")
    return settings.deployment.name or deployment_name(f"{version.name}-v{version.version}")


def deployment_of(endpoint: str | None) -> str | None:
    """The deployment name in a recorded ``{endpoint}/openai/deployments/{name}`` URL (``deployment_endpoint``)."""
    marker = "/openai/deployments/"
    if not endpoint or marker not in endpoint:
        return None
    return endpoint.split(marker, 1)[1].split("/", 1)[0].split("?", 1)[0] or None


def resource_of(endpoint: str | None) -> str | None:
    """The resource endpoint (``https://RESOURCE.openai.azure.com``) of a recorded deployment URL."""
    marker = "/openai/"
    if not endpoint or marker not in endpoint:
        return None
    return endpoint.split(marker, 1)[0] or None


def deployment_name(text: str) -> str:
    """Deployment names: letters, digits, ``-`` ``_`` ``.``, at most 64 characters."""
    import re

    return (re.sub(r"[^A-Za-z0-9._-]", "-", text).strip("-.") or "ftp")[:64]


def online_weights(change: Any) -> tuple[str, dict[str, int], dict[str, int]] | None:
    """A ``TrafficChange`` as the weights of one Azure ML managed online endpoint: (endpoint, deployment ->
    traffic %, deployment -> mirror %). None when no slot is a deployment of an online endpoint (Azure
    OpenAI deployments and serverless endpoints split nothing themselves: ftp serve routes by the
    recorded weights). A ``UserError`` when Azure ML could not carry the change: slots on different
    endpoints, a slot with a share that is no deployment of the endpoint, or a mirror that breaks Azure
    ML's rules (one deployment, at most 50%, never one that takes live traffic)."""
    held: dict[str, tuple[str, str]] = {}  # slot -> (endpoint, deployment)
    for slot, version in change.slots.items():
        made = change.endpoints.get(version)
        details = made.details if made is not None else {}
        if details.get("online_endpoint") and details.get("deployment"):
            held[slot] = (str(details["online_endpoint"]), str(details["deployment"]))
    if not held:
        return None
    endpoints = sorted({endpoint for endpoint, _ in held.values()})
    if len(endpoints) > 1:
        raise UserError(f"{change.name}: its slots are deployments of different online endpoints ({', '.join(endpoints)}); "
                        "Azure ML splits traffic only between deployments of one endpoint")
    shared = {slot for slot, pct in {**change.traffic, **change.mirror}.items() if pct}
    outside = sorted(shared - set(held))
    if outside:
        raise UserError(f"{change.name}: slot {', '.join(f'{s} (version {change.slots.get(s)})' for s in outside)} is "
                        f"no deployment of online endpoint {endpoints[0]}, so Azure ML cannot route its share; "
                        "deploy that version to the endpoint or give its slot 0%")
    live = {held[s][1]: int(pct) for s, pct in change.traffic.items() if s in held and pct}
    mirror = {held[s][1]: int(pct) for s, pct in change.mirror.items() if s in held and pct}
    if len(mirror) > 1 or any(pct > 50 for pct in mirror.values()) or set(mirror) & set(live):
        raise UserError(f"{change.name}: mirror {mirror}: Azure ML mirrors to one deployment, at most 50%, and never "
                        "to one that takes live traffic")
    if live and sum(live.values()) != 100:
        raise UserError(f"{change.name}: traffic {live} sums to {sum(live.values())}%; an online endpoint's weights "
                        "must sum to 100")
    return endpoints[0], live, mirror
