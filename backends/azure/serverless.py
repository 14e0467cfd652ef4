"""The serverless endpoints of a ``kind: azureml`` run: each made once, recorded, and reused.

Azure ML serves a fine-tuned catalog model (and a catalog model itself) from a serverless endpoint.
The evaluation needs the fine-tuned model to answer the test prompts before the gate,
so the first step that asks for an answer (review's samples, or evaluate) makes the endpoint the deploy
step would make, and records it in ``state.json`` before the PUT (``Creating``) and after it. Every
later step finds it there - deploy included, and a resumed run in another process - and asks Azure ML
whether it still stands (GET) instead of creating a second one. Its key is listed when the first
prompt is sent and stays in memory.

The SDK calls go through the run's ``AzureMLAdapter`` (its MLClient and its error translation); the
few it has no method for (GET and listKeys of an endpoint) use the same client here.
"""

from __future__ import annotations

import re
from typing import Any

from ftp.errors import FtpError, StepFailed
from ftp.types import StepContext

from .azureml_vocab import needs_marketplace_subscription, unversioned

FINE_TUNED, BASE = "azureml_endpoint", "azureml_base_endpoint"
DEPLOYED = "azureml_deploy_endpoint"  # deploy's own endpoint when it does not reuse the evaluation's
SUBSCRIPTIONS = "azureml_subscriptions"
FAILED = frozenset({"failed", "canceled", "cancelled"})


def endpoint_name(role: str, run_id: str) -> str:
    """``ftp-ft-<run id>`` or ``ftp-base-<run id>``: unique per run, and short enough for Azure ML's
    endpoint names (a letter first, then letters, digits and hyphens; 32 at most)."""
    return (re.sub(r"[^A-Za-z0-9-]", "-", f"ftp-{role}-{run_id}").strip("-"))[:32]


def subscription_name(model_id: str) -> str:
    """One marketplace subscription per model offer (``Meta-Llama-3-1-8B-Instruct-sub``), whichever
    endpoint needs it: a second subscription to the same offer under another name is refused."""
    model = unversioned(model_id).rsplit("/", 1)[-1]
    return re.sub(r"[^A-Za-z0-9-]", "-", model)[:60] + "-sub"


def succeeded(record: Any) -> bool:
    return isinstance(record, dict) and str(record.get("provisioning_state", "")).lower() == "succeeded"


def as_record(endpoint: Any) -> dict[str, str]:
    """What a run keeps of an endpoint: the same keys ``AzureMLAdapter.create_serverless_endpoint`` returns."""
    return {"name": str(endpoint.name), "id": str(endpoint.id or ""), "model_id": str(endpoint.model_id or ""),
            "scoring_uri": str(endpoint.scoring_uri or ""),
            "provisioning_state": str(endpoint.provisioning_state or "")}


def _step(ctx: StepContext) -> str:
    return str(getattr(ctx, "phase", "") or "evaluate")


def find(adapter: Any, name: str, step: str) -> dict[str, str] | None:
    """The endpoint as Azure ML has it now, or None when there is no endpoint of that name."""
    from azure.core.exceptions import ResourceNotFoundError

    with adapter._azure(step=step, action=f"look-up of serverless endpoint {name}",
                        missing=f"serverless endpoint '{name}' is not in {adapter._scope}"):
        try:
            return as_record(adapter._client().serverless_endpoints.get(name))
        except ResourceNotFoundError:
            return None


def key(adapter: Any, name: str, step: str) -> str:
    """The endpoint's primary key (listKeys), for the ``Authorization`` header of its requests."""
    with adapter._azure(step=step, action=f"key listing of serverless endpoint {name}",
                        missing=f"serverless endpoint '{name}' is not in {adapter._scope}"):
        keys = adapter._client().serverless_endpoints.get_keys(name)
    found = getattr(keys, "primary_key", None)
    if not found:
        raise StepFailed(step, f"Azure ML serverless endpoint {name} returned no key; it must use key auth "
                               "(authMode Key), the default for serverless endpoints")
    return str(found)


def subscribe(adapter: Any, ctx: StepContext, base_model_id: str) -> None:
    """The marketplace subscription a third-party model (Llama, Mistral) needs before any endpoint of it
    or of a model fine-tuned from it; once per model, recorded. Phi needs none."""
    if not base_model_id or not needs_marketplace_subscription(base_model_id):
        return
    done: dict[str, str] = dict(ctx.resource(SUBSCRIPTIONS) or {})
    offer = unversioned(base_model_id)
    if offer in done:
        return
    done[offer] = adapter.marketplace_subscription(base_model_id, subscription_name(base_model_id)) or ""
    ctx.record_resource(SUBSCRIPTIONS, done)


def ensure(adapter: Any, ctx: StepContext, resource: str, name: str, model_id: str, base_model_id: str,
           fix: str) -> dict[str, str]:
    """The Succeeded endpoint ``name`` serving ``model_id``: the run's recorded one if Azure ML still has
    it, else created now (PUT) and recorded before and after. ``fix`` ends the error of a failed
    provisioning: what the user can do next (resume, or the setting that does without the endpoint)."""
    step = _step(ctx)
    known = ctx.resource(resource)
    if succeeded(known) and known.get("name") == name and known.get("model_id") == model_id:
        current = find(adapter, name, step)
        if current and succeeded(current) and current.get("model_id") == model_id:
            return current
        ctx.reporter.event("azure", message=f"serverless endpoint {name} is gone or changed; creating it again")
    subscribe(adapter, ctx, base_model_id)
    ctx.reporter.event("azure", message=f"creating serverless endpoint {name} for {model_id}")
    ctx.record_resource(resource, {"name": name, "model_id": model_id, "provisioning_state": "Creating"})
    try:
        made = adapter.create_serverless_endpoint(name, model_id)
    except StepFailed as exc:
        made = _after_failure(adapter, name, model_id, step, exc)
    ctx.record_resource(resource, made)
    if not succeeded(made):
        raise StepFailed(step, failed_message(name, model_id, made.get("provisioning_state", ""), adapter._scope, fix))
    return made


def _after_failure(adapter: Any, name: str, model_id: str, step: str, exc: StepFailed) -> dict[str, str]:
    """What the endpoint became after the SDK's long-running operation gave up.

    azure-core reports a PUT whose resource ended ``Failed`` as "Operation returned an invalid status
    'OK'", which says nothing; the endpoint's own provisioningState does. A refusal of the PUT itself
    (quota, a model not offered serverless) leaves no endpoint and keeps Azure's message, in this step.
    """
    try:
        current = find(adapter, name, step)
    except FtpError:
        current = None
    if current and current.get("model_id") == model_id and (
            succeeded(current) or current["provisioning_state"].lower() in FAILED):
        return current
    message = str(exc).split(": ", 1)[1] if str(exc).startswith(f"{exc.step}: ") else str(exc)
    raise StepFailed(step, message) from None


def failed_message(name: str, model_id: str, state: str, scope: str, fix: str) -> str:
    """One line: which endpoint, how it ended, where to look, and (``fix``) what to do next."""
    state = state.capitalize() if state else "without a state"  # the SDK lowercases Azure's "Failed"
    text = (f"Azure ML serverless endpoint {name} for {model_id} ended {state} in {scope}; "
            "check in Azure AI Foundry that the model is offered serverless in the workspace's region")
    return f"{text}, then {fix}" if fix else text
