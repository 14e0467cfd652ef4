"""Which serverless endpoint answers each candidate of a ``kind: azureml`` evaluation.

- **fine-tuned**: the serverless endpoint of the registered model, the one the deploy step serves
  (``ftp-ft-<run id>``, made once per run by :mod:`.serverless` and reused by deploy).
- **base**: ``backends.azure.evaluation.base_deployment`` when it names an existing serverless endpoint
  of the workspace; otherwise an endpoint of the catalog model itself (``ftp-base-<run id>``, its
  registry id without the version, which is what a serverless endpoint takes), after the marketplace
  subscription a third-party model needs. A base model that is no registry model, or that Azure ML will
  not serve serverless, is *not evaluated*, with the reason and the setting to change.
"""

from __future__ import annotations

from typing import Any

from ftp.errors import FtpError, NotEvaluable
from ftp.types import ModelRef, Predictor, StepContext

from .azureml_vocab import unversioned
from .predictor import ServerlessPredictor
from .serverless import BASE, FINE_TUNED, endpoint_name, ensure, find, key, succeeded
from .settings import AzureSettings

BASE_FIX = ("set backends.azure.evaluation.base_deployment to a serverless endpoint of the base model, or drop "
            "base from evaluate.compare_to")


def azureml_predictor(s: AzureSettings, model: ModelRef, ctx: StepContext, adapter: Any = None) -> Predictor:
    """The candidate's serverless endpoint as a predictor; NotEvaluable when none can answer."""
    if adapter is None:
        from .azureml_trainer import make_adapter

        adapter = make_adapter(s)
    if model.deployment:  # ftp eval deployment:NAME: an existing serverless endpoint answers as it is
        return existing_predictor(s, model.deployment, ctx, adapter)
    if model.kind == "base":
        return base_predictor(s, model, ctx, adapter)
    return fine_tuned_predictor(s, model, ctx, adapter)


def fine_tuned_predictor(s: AzureSettings, model: ModelRef, ctx: StepContext, adapter: Any) -> Predictor:
    """The registered model behind the run's serverless endpoint (created here the first time)."""
    from .azureml_trainer import JOB

    if s.evaluation.fine_tuned == "none":
        raise NotEvaluable("backends.azure.evaluation.fine_tuned is none, so no serverless endpoint answers the "
                           "test prompts; set it to deploy to evaluate through the endpoint the deploy step serves")
    if not model.cloud_id:
        raise NotEvaluable(f"{model.describe()}: the train step recorded no registered Azure ML model to serve")
    base_model_id = str((ctx.resource(JOB) or {}).get("base_model_id") or "")
    made = ensure(adapter, ctx, FINE_TUNED, endpoint_name("ft", ctx.run_id), model.cloud_id, base_model_id,
                  fix=f"resume the run (ftp run --resume {ctx.run_id}), or set backends.azure.evaluation.fine_tuned: "
                      "none to go on without evaluating it")
    ctx.reporter.event("azure", message=f"serverless endpoint {made['name']} answers for the fine-tuned model; "
                                        "the deploy step serves from it too")
    return _predictor(s, ctx, adapter, made)


def base_model_id(model: ModelRef, ctx: StepContext) -> str | None:
    """The base model's registry id: as the train step resolved it (exact version), or as the file gave it."""
    from .azureml_trainer import JOB

    recorded = str((ctx.resource(JOB) or {}).get("base_model_id") or "")
    for candidate in (recorded, model.base):
        if candidate.startswith("azureml://registries/"):
            return candidate
    return None


def existing_predictor(s: AzureSettings, named: str, ctx: StepContext, adapter: Any,
                       setting: str = "the deployment") -> Predictor:
    """A serverless endpoint that exists and has Succeeded, as a predictor (nothing is created)."""
    current = find(adapter, named, str(getattr(ctx, "phase", "") or "evaluate"))
    if not succeeded(current) or current is None:
        state = current["provisioning_state"] if current else "not found"
        raise NotEvaluable(f"{setting}: serverless endpoint {named!r} is {state} in {adapter._scope}; name a "
                           "Succeeded serverless endpoint")
    return _predictor(s, ctx, adapter, current)


def base_predictor(s: AzureSettings, model: ModelRef, ctx: StepContext, adapter: Any) -> Predictor:
    """The base model behind the configured endpoint, or behind one of the catalog model made for this run."""
    step = str(getattr(ctx, "phase", "") or "evaluate")
    named = s.evaluation.base_deployment
    if named:
        return existing_predictor(s, named, ctx, adapter, "backends.azure.evaluation.base_deployment")
    registry_id = base_model_id(model, ctx)
    if registry_id is None:
        raise NotEvaluable(f"{model.base} is not a model of an Azure ML registry (no azureml://registries/ id), so no "
                           f"serverless endpoint can serve it; {BASE_FIX}")
    try:
        made = ensure(adapter, ctx, BASE, endpoint_name("base", ctx.run_id), unversioned(registry_id), registry_id,
                      fix="")
    except FtpError as exc:  # refused (not offered serverless here, quota) or failed: the run goes on without it
        reason = str(exc).split(": ", 1)[1] if str(exc).startswith(f"{step}: ") else str(exc)
        raise NotEvaluable(f"no serverless endpoint of the base model: {reason}; {BASE_FIX}") from None
    ctx.reporter.event("warning", message=f"serverless endpoint {made['name']} serves the base model for this "
                                          f"evaluation only; it stays in workspace {s.workspace} until you delete "
                                          f"it (az ml serverless-endpoint delete --name {made['name']})")
    return _predictor(s, ctx, adapter, made)


def _predictor(s: AzureSettings, ctx: StepContext, adapter: Any, endpoint: dict[str, str]) -> Predictor:
    name = endpoint["name"]
    if not endpoint.get("scoring_uri"):
        raise NotEvaluable(f"serverless endpoint {name} reported no inference URI; see it in Azure AI Foundry")
    step = str(getattr(ctx, "phase", "") or "evaluate")
    return ServerlessPredictor(name, endpoint["scoring_uri"], lambda: key(adapter, name, step), s.retry,
                               s.evaluation.temperature)
