"""``backends.azure.kind: azureml``: the train, cancel and deploy steps for open models (Phi, Llama,
Mistral) on Azure ML, orchestrated the same way as the Azure OpenAI path around ``AzureMLAdapter``.

What keeps money safe here: the job's name is chosen by ftp (``ftp-<run id>``) and recorded before
it is submitted, so a resumed run asks Azure ML about that name and a repeated submission is the same
job, never a second one; data assets are named by content hash and recorded as soon as they exist.
Azure ML bills compute time, not tokens, so there is no token estimate: ftp says so and still asks.
"""

from __future__ import annotations

import time
from typing import Any

from ftp.errors import StepFailed, UserError
from ftp.types import (
    DeployRequest,
    ModelRef,
    Provisioned,
    StepContext,
    TrainRequest,
    TrainResult,
)

from . import http
from .deploy import AzureDeployment, deployment_name, name_for
from .cost import confirm_submission
from .files import content_name
from .settings import AzureSettings, default_suffix

ASSETS, JOB, ENDPOINT = "azureml_assets", "azureml_job", "azureml_endpoint"  # ENDPOINT: serverless.FINE_TUNED


def check_settings(settings: AzureSettings) -> None:
    missing = settings.unset("subscription_id", "resource_group", "workspace")
    if missing:
        raise UserError(f"backends.azure: kind azureml needs {', '.join(missing)} (the Azure ML workspace); "
                        "see docs/backends/azure.md")


def make_adapter(settings: AzureSettings) -> Any:
    """The adapter with ftp's credential, clock and retry bounds."""
    from .auth import default_credential
    from .azureml import AzureMLAdapter

    clock = http.CLOCK
    return AzureMLAdapter(subscription_id=settings.subscription_id or "", resource_group=settings.resource_group or "",
                          workspace=settings.workspace or "", credential=default_credential(),
                          registry=settings.registry, poll_interval=settings.poll.interval, sleep=clock.sleep,
                          clock=clock.now, lro_interval=settings.poll.interval,
                          client_options={"retry_total": settings.retry.attempts - 1})


class AzureMLFineTuning:
    def __init__(self, settings: AzureSettings, ctx: StepContext, adapter: Any = None) -> None:
        check_settings(settings)
        self.settings = settings
        self.ctx = ctx
        self.adapter = adapter if adapter is not None else make_adapter(settings)

    def _assets(self, request: TrainRequest) -> dict[str, str]:
        known: dict[str, str] = dict(self.ctx.resource(ASSETS) or {})
        for ref, split in ((request.train, "train"), (request.validation, "validation")):
            if ref is None or ref.sha256 in known:
                continue
            name = content_name(ref.sha256, split)
            self.ctx.reporter.event("azure", message=f"uploading {split} data as Azure ML data asset {name}")
            known[ref.sha256] = self.adapter.upload_data(ref.path, name, "1")
            self.ctx.record_resource(ASSETS, dict(known))
        return known

    def _submit(self, request: TrainRequest) -> dict[str, Any]:
        if self.settings.max_cost is not None:
            self.ctx.reporter.event("warning", message="backends.azure.max_cost cannot be checked for kind azureml: "
                                                       "Azure ML bills compute time, which ftp cannot estimate")
        confirm_submission(self.ctx, f"Submit the Azure ML fine-tuning job of {request.base_model} (billed by "
                                     "compute time; no estimate)?")
        assets = self._assets(request)
        base = request.base_model
        model_id = base if base.startswith("azureml://") else self.adapter.resolve_model(base, self.settings.model_label)
        job = {"name": deployment_name(f"ftp-{self.ctx.run_id}"), "base_model_id": model_id, "state": "submitting",
               "training_asset": assets[request.train.sha256],
               "validation_asset": assets.get(request.validation.sha256 if request.validation else "", "")}
        self.ctx.record_resource(JOB, job)
        hp = {"epochs": request.settings.epochs, "batch_size": request.settings.batch_size,
              "learning_rate": request.settings.resolved_learning_rate()}
        from .azureml_vocab import hyperparameters_from_train

        self.adapter.submit(model_id, job["training_asset"], job["validation_asset"], hyperparameters_from_train(hp),
                            self.settings.suffix or default_suffix(str(self.ctx.setting("name") or "ftp")), job["name"])
        job = {**job, "state": "submitted"}
        self.ctx.record_resource(JOB, job)
        self.ctx.reporter.event("azure", message=f"submitted Azure ML job {job['name']}")
        return job

    def _known_job(self) -> dict[str, Any] | None:
        """The job this run submitted, if Azure ML knows it (a crash may have come before the submission)."""
        job = self.ctx.resource(JOB)
        if not job:
            return None
        if job.get("state") == "submitted":
            return dict(job)
        try:
            self.adapter.status(job["name"])
        except UserError:  # not found: the submission never arrived
            return None
        return {**job, "state": "submitted"}

    def train(self, request: TrainRequest) -> TrainResult:
        from .azureml_vocab import normalise

        started = time.time()
        job = self._known_job()
        if job is not None:
            self.ctx.reporter.event("azure", message=f"reattaching to Azure ML job {job['name']}")
        else:
            job = self._submit(request)

        def on_status(raw: str) -> None:
            self.ctx.reporter.event("azure_status", message=f"job {job['name']}: {normalise(raw)} ({raw})",
                                    status=normalise(raw))

        raw = self.adapter.wait(job["name"], on_status=on_status, timeout=self.settings.poll.timeout)
        status = normalise(raw)
        if status == "failed":
            raise StepFailed("train", f"Azure ML job {job['name']} failed; its logs are in Azure ML studio "
                             f"(workspace {self.settings.workspace}, experiment ftp)")
        if status == "cancelled":
            raise StepFailed("train", f"Azure ML job {job['name']} was cancelled; start a new run to train again")
        model_id = self.adapter.registered_model(job["name"])
        details = {"job_name": job["name"], "base_model_id": job["base_model_id"], "registered_model": model_id,
                   "training_asset": job["training_asset"], "validation_asset": job["validation_asset"],
                   "workspace": self.settings.workspace}
        return TrainResult(model=ModelRef(kind="cloud", base=request.base_model, backend="azure", cloud_id=model_id),
                           epochs=float(request.settings.epochs),
                           wall_seconds=time.time() - started, backend_details=details)

    def cancel(self) -> str:
        job = self._known_job()
        if job is None:
            raise UserError(f"run {self.ctx.run_id} has no Azure ML job to cancel (none was submitted)")
        from .azureml_vocab import is_terminal

        current = self.adapter.status(job["name"])
        if is_terminal(current):
            return f"Azure ML job {job['name']} is already {current}; nothing to cancel"
        self.adapter.cancel(job["name"])
        return f"cancel requested for Azure ML job {job['name']}"

    def deploy(self, request: DeployRequest) -> Provisioned:
        """The registered model's serverless endpoint: the one the evaluation made for it in this run
        (reused, not created again), else a new one named ``deployment.name`` or ``<name>-v<version>``."""
        from .serverless import DEPLOYED, FINE_TUNED, ensure, succeeded

        version = request.version
        known = self.ctx.resource(ENDPOINT)
        reuse = (succeeded(known) and known.get("model_id") == version.artifact
                 and self.settings.deployment.name in (None, known.get("name")))
        name = str(known["name"]) if reuse else name_for(self.settings, version, request.strategy)
        resource = FINE_TUNED if reuse or not known else DEPLOYED  # keep the evaluation's endpoint on record
        base_model_id = str(version.backend_details.get("base_model_id") or "")
        made = ensure(self.adapter, self.ctx, resource, name, version.artifact, base_model_id,
                      fix=f"resume the run (ftp run --resume {self.ctx.run_id})")
        deployment = AzureDeployment(name=made["name"], model=version.artifact, sku="Consumption", capacity=0,
                                     endpoint=made["scoring_uri"], state=made["provisioning_state"])
        return Provisioned(backend="azure", endpoint=deployment.endpoint, details=deployment.as_dict())
