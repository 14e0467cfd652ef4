"""The Azure backend: managed fine-tuning on Azure OpenAI (``kind: openai``, the default) or open
models through Azure ML (``kind: azureml``), deployments through the management plane.

Importing this module is cheap and needs neither ``requests`` nor any azure package: they are
imported when a step talks to Azure, so ``ftp --help`` and the local backend work without the
``azure`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ftp import hookimpl
from ftp.config.model_source import model_source
from ftp.errors import NotEvaluable, StepFailed, UserError
from ftp.types import (
    BackendLimits,
    BackendSpec,
    DeployRequest,
    ModelRef,
    Predictor,
    Provisioned,
    ServeContext,
    ServingEngine,
    StepContext,
    TrafficChange,
    TrainRequest,
    TrainResult,
    TrainSpec,
)

from .settings import AzureSettings

# What Azure OpenAI fine-tuning accepts (gpt-4.1-mini, gpt-4o-mini): tokens per training example, the
# fewest examples, the largest training file; and a default price for ``ftp data check``'s estimate
# (USD per 1M training tokens, gpt-4.1-mini, the default base model; unverified, the user's to check).
LIMITS = BackendLimits(max_tokens_per_example=65_536, min_examples=10, max_file_mb=512, price_per_1m_tokens=5.0)
DEFAULT_BASE = "gpt-4.1-mini-2025-04-14"  # see retirement.py for why this one

NAME = "azure"
EVAL_DEPLOYMENT = "azure_eval_deployment"
DEPLOYMENT = "azure_deployment"


def settings_of(raw: dict[str, Any]) -> AzureSettings:
    """``backends.azure`` as validated by the pipeline loader (defaults when the block is absent)."""
    return AzureSettings.model_validate(raw or {})


def require_extra() -> None:
    try:
        import requests  # noqa: F401
    except ImportError:
        raise UserError("the azure backend needs the azure extra: pip install 'ftp[azure]'") from None


class AzureTrainer:
    """Dispatches on ``backends.azure.kind``; creating it imports nothing heavy."""

    name = "azure"

    # --- kind: azureml ---------------------------------------------------------------------------

    @staticmethod
    def _azureml(settings: AzureSettings, ctx: StepContext) -> Any:
        require_extra()
        from .azureml_trainer import AzureMLFineTuning

        return AzureMLFineTuning(settings, ctx)

    # --- the Trainer protocol --------------------------------------------------------------------

    def preflight(self, spec: TrainSpec) -> list[str]:
        from .train_settings import ignored, whole_epochs

        s = settings_of(spec.backend_settings)
        base_model = spec.base_model
        whole_epochs(spec.settings.epochs)  # a fractional epoch would fail at submission, after the data work
        if s.kind == "azureml":
            from .azureml_trainer import check_settings

            check_settings(s)
            require_extra()
            return ignored(spec.settings, "azureml")
        if model_source(base_model).on_this_machine:
            raise UserError(f"model.base {base_model!r} is a local model; give the Azure OpenAI base model in "
                            f"backends.azure.model.base, e.g. {DEFAULT_BASE}")
        from .retirement import check_base

        warnings = check_base(base_model, allow_deprecated=s.allow_deprecated_base)
        if not s.endpoint:
            raise UserError("backends.azure.endpoint is not set; export AZURE_OPENAI_ENDPOINT="
                            "https://RESOURCE.openai.azure.com (the file reads ${AZURE_OPENAI_ENDPOINT})")
        require_extra()
        from .auth import check_auth

        check_auth(s)
        return warnings + ignored(spec.settings, "openai")

    def train(self, request: TrainRequest, ctx: StepContext) -> TrainResult:
        s = settings_of(request.backend_settings)
        if s.kind == "azureml":
            return self._azureml(s, ctx).train(request)
        from .training import OpenAIFineTuning

        return OpenAIFineTuning(s, ctx).train(request)

    def predictor(self, model: ModelRef, ctx: StepContext) -> Predictor:
        s = settings_of(ctx.backend_settings)
        if s.kind == "azureml":
            from .serverless_eval import azureml_predictor

            return azureml_predictor(s, model, ctx)
        return openai_predictor(s, model, ctx)

    def plan(self, request: TrainRequest) -> None:
        return None  # memory is Azure's concern

    def export(self, model: ModelRef, out_dir: Path, merge: bool) -> Path:
        raise UserError(f"{model.describe()} lives on Azure and cannot be exported; deploy it (ftp run ... "
                        "--steps deploy) or download it from the Azure AI Foundry portal where allowed")

    def cancel(self, ctx: StepContext) -> str:
        s = settings_of(ctx.backend_settings)
        if s.kind == "azureml":
            return self._azureml(s, ctx).cancel()
        require_extra()
        from .training import OpenAIFineTuning

        return OpenAIFineTuning(s, ctx).cancel()


def openai_predictor(s: AzureSettings, model: ModelRef, ctx: StepContext) -> Predictor:
    """Chat completions on a deployment: the configured base deployment, or one made for evaluation."""
    from .dataplane import DataPlane
    from .predictor import ChatPredictor

    ev = s.evaluation
    if model.deployment:  # ftp eval deployment:NAME: an existing deployment answers, nothing is made
        return ChatPredictor(DataPlane(s), model.deployment, ev.temperature)
    if model.kind == "base":
        if not ev.base_deployment:
            raise NotEvaluable(f"no deployment of {model.base} to ask; set backends.azure.evaluation.base_deployment "
                               "to an existing deployment of the base model to compare against it")
        return ChatPredictor(DataPlane(s), ev.base_deployment, ev.temperature)
    numbers = ", ".join(f"{k} {v:.4f}" for k, v in (ctx.resource("azure_job_metrics") or {}).items())
    fallback = f"the job's own validation numbers: {numbers or 'none reported'}"
    if ev.fine_tuned == "none":
        raise NotEvaluable(f"backends.azure.evaluation.fine_tuned is none, so no deployment answers the test "
                           f"prompts; {fallback}")
    missing = s.unset("subscription_id", "resource_group", "account")
    if missing:
        raise NotEvaluable(f"no deployment can be made to answer the test prompts (backends.azure: "
                           f"{', '.join(missing)} not set; or set evaluation.fine_tuned: none); {fallback}")
    return ChatPredictor(DataPlane(s), eval_deployment(s, model, ctx), ev.temperature)


def eval_deployment(s: AzureSettings, model: ModelRef, ctx: StepContext) -> str:
    """A deployment of the fine-tuned model for evaluation (DeveloperTier by default), made once per run."""
    from .deploy import create_or_update, deployment_name

    known = ctx.resource(EVAL_DEPLOYMENT) or {}
    if known.get("model") == model.cloud_id and known.get("state") == "Succeeded":
        return str(known["name"])
    name = deployment_name(f"ftp-eval-{ctx.run_id}")
    ctx.reporter.event("azure", message=f"deploying {model.cloud_id} as {name} ({s.evaluation.sku}) to answer "
                                        "the test prompts")
    if s.evaluation.sku != "DeveloperTier":
        ctx.reporter.event("warning", message=f"the evaluation deployment {name} is {s.evaluation.sku}: it bills "
                                              "hosting by the hour until you delete it (DeveloperTier does not)")
    ctx.record_resource(EVAL_DEPLOYMENT, {"name": name, "model": model.cloud_id, "state": "Creating"})
    made = create_or_update(s, name, model.cloud_id or "", s.evaluation.sku, s.evaluation.capacity,
                            step=getattr(ctx, "phase", "") or "evaluate")
    ctx.record_resource(EVAL_DEPLOYMENT, made.as_dict())
    return made.name


class AzureDeployer:
    """An Azure deployment of the registered model, recorded in the run (its resources) before and after."""

    name = "azure"

    def deploy(self, request: DeployRequest, ctx: StepContext) -> Provisioned:
        s = settings_of(request.backend_settings)
        if s.kind == "azureml":
            return AzureTrainer._azureml(s, ctx).deploy(request)
        require_extra()
        from .deploy import create_or_update, name_for

        version = request.version
        name = name_for(s, version, request.strategy)  # blue-green: one deployment per version, beside the live one
        ctx.record_resource(DEPLOYMENT, {"name": name, "model": version.artifact, "state": "Creating"})
        made = create_or_update(s, name, version.artifact, s.deployment.sku, s.deployment.capacity)
        ctx.record_resource(DEPLOYMENT, made.as_dict())
        return Provisioned(backend=NAME, endpoint=made.endpoint, details=made.as_dict())

    def apply_traffic(self, change: TrafficChange) -> None:
        """New slot weights where Azure splits traffic itself: the managed online endpoint whose deployments
        the slots are (``kind: azureml``). Azure OpenAI deployments and serverless endpoints split nothing,
        so there is nothing to set on Azure: ftp serve routes by the recorded weights. A refusal (a
        UserError, or Azure's one-line error) comes before the core records the weights."""
        from .deploy import online_weights

        target = online_weights(change)
        if target is None:
            return
        s = settings_of(change.backend_settings)
        require_extra()
        from .azureml_trainer import check_settings, make_adapter

        check_settings(s)
        endpoint, live, mirror = target
        now = make_adapter(s).set_traffic(endpoint, live, mirror)
        if {k: v for k, v in now.items() if v} != live:
            raise StepFailed("deploy", f"Azure ML online endpoint {endpoint} reports traffic {now} after the update, "
                                       f"not {live}; see the endpoint in Azure ML studio")


@hookimpl
def ftp_backends() -> list[BackendSpec]:
    return [BackendSpec(name=NAME, description="Azure OpenAI managed fine-tuning (or open models via Azure ML), "
                                               "Azure deployments", settings=AzureSettings, limits=LIMITS)]


@hookimpl
def ftp_token_counter(backend: str, model: str | None) -> Any:
    """o200k_base (the gpt-4o / gpt-4.1 family's encoding) when its file is here; else the checks estimate."""
    if backend != NAME:
        return None
    from .tokens import tiktoken_counter

    return tiktoken_counter()


@hookimpl
def ftp_trainer(backend: str) -> AzureTrainer | None:
    return AzureTrainer() if backend == NAME else None


@hookimpl
def ftp_predictor(model: ModelRef, ctx: StepContext) -> Predictor | None:
    """A fine-tuned or base model behind an Azure OpenAI deployment (one is made for evaluation if needed)."""
    return AzureTrainer().predictor(model, ctx) if model.backend == NAME else None


@hookimpl
def ftp_deployer(backend: str) -> AzureDeployer | None:
    return AzureDeployer() if backend == NAME else None


@hookimpl
def ftp_serving_engine(backend: str, context: ServeContext) -> ServingEngine | None:
    """Azure versions answer from their own deployments (backends/azure/serving.py); nothing is loaded here."""
    if backend != NAME:
        return None
    require_extra()
    from .serving import AzureServingEngine

    return AzureServingEngine(context)


@hookimpl
def ftp_base_retirement(backend: str, base_model: str) -> Any:
    """The last day a subscription that already trained ``base_model`` may train it again (a retrain
    is such a subscription): the schedule's existing-customers date."""
    if backend != NAME:
        return None
    from .retirement import lookup

    row = lookup(base_model)
    return row.existing_customers if row else None
