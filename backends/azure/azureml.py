"""Open models (Phi, Llama, Mistral) fine-tuned on Azure ML through ``azure-ai-ml``: the one adapter.

Everything ``backends.azure.kind: azureml`` needs from the SDK goes through :class:`AzureMLAdapter`,
so the rest of ftp sees plain strings and dicts, and ftp's own errors instead of azure-core's. Every
azure import is inside a function: importing this module costs nothing without the ``azure`` extra.

The flow, as in Azure's chat-completion sample: upload the JSONL files as ``uri_file`` data assets,
resolve the base model in a registry (``azureml`` for Phi, ``azureml-meta`` for Llama), submit a
``FineTuning`` job (ChatCompletion task, hyperparameters as strings), follow it to Completed, Failed
or Canceled, then serve the registered output model from a serverless endpoint (third-party models
first need a marketplace subscription).

How it is tested (tests/azure/test_azureml.py), without reaching Azure:

- Through HTTP, with ``responses`` faking the endpoints the real SDK calls (azure-core's default
  ``RequestsTransport``): the registry discovery call and the model look-ups by label and by version;
  the data asset upload end to end (datastore, its secrets, the blob HEAD/PUT, the data version PUT);
  the job PUT (body checked: FineTuning, chatCompletion, string hyperparameters, model uri, the
  registered_model output); the job GET sequence to Completed and to Failed; cancel (POST + polling);
  the registered model id (job, workspace and model-version GETs); the marketplace subscription PUT;
  the serverless endpoint PUT (sku Consumption, modelSettings.modelId); and the error translation for
  401, 403, 404 and quota answers.
  Refusals made before any call (a missing local file, no validation asset) run with nothing
  registered, so a request would fail them.
- With a fake ``ml_client``-shaped object: the wait loop's timeout and its status callback on an
  injected clock (a job that never ends is easier to fake there than over HTTP).
- Pure functions, directly: the hyperparameter mapping and stringification, the status normalisation,
  and which models need a marketplace subscription; in a subprocess, that importing this module
  loads no azure package.

- Managed online endpoints (tests/azure/test_azure_traffic.py, test_azure_serving.py), through HTTP
  too: the traffic update (GET of the endpoint and its deployments, the workspace GET, the endpoint PUT
  and its long-running operation, the final GET) and the key listing (GET, listKeys).

Not covered offline: the token exchange of a real credential (tests hand in a fake TokenCredential),
and whether the live service accepts these bodies beyond the REST spec's examples.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftp.errors import StepFailed, UserError

# absolute: tests load this file on its own to check that importing it loads no azure package
from ftp.backends.azure.azureml_vocab import (FIRST_PARTY_REGISTRY, is_terminal, needs_marketplace_subscription,
                                               string_hyperparameters, translate_error, unversioned)

# --- the adapter ----------------------------------------------------------------------------------


class AzureMLAdapter:
    """The azure-ai-ml calls of the azureml trainer, behind plain values in and out.

    ``ml_client`` and ``registry_clients`` let tests hand in fakes; otherwise MLClients are built on
    first use (the registry one calls the registry discovery service when it is created).
    ``sleep`` and ``clock`` drive :meth:`wait`, so tests follow a job without waiting for it.
    ``lro_interval`` is the polling interval of long-running ARM operations (cancel, endpoints);
    None keeps the SDK's. ``client_options`` go to every MLClient (e.g. ``retry_total``).
    """

    def __init__(self, *, subscription_id: str, resource_group: str, workspace: str, credential: Any,
                 registry: str = FIRST_PARTY_REGISTRY, poll_interval: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 lro_interval: float | None = None, client_options: Mapping[str, Any] | None = None,
                 ml_client: Any = None, registry_clients: Mapping[str, Any] | None = None) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.workspace = workspace
        self.registry = registry
        self.credential = credential
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._lro = {} if lro_interval is None else {"polling_interval": lro_interval}
        self._options = dict(client_options or {})
        self._ml_client = ml_client
        self._registry_clients: dict[str, Any] = dict(registry_clients or {})

    # --- clients and errors ---

    @property
    def _scope(self) -> str:
        return f"workspace '{self.workspace}' (resource group '{self.resource_group}')"

    def _client(self) -> Any:
        """The workspace MLClient; building it makes no call, so errors surface at the first use."""
        if self._ml_client is None:
            MLClient = _sdk().MLClient
            # the client-wide polling interval too: some SDK calls (online endpoints) take no per-call one
            self._ml_client = MLClient(self.credential, subscription_id=self.subscription_id,
                                       resource_group_name=self.resource_group, workspace_name=self.workspace,
                                       show_progress=False, **{**self._lro, **self._options})
        return self._ml_client

    def _registry_client(self, registry: str) -> Any:
        """One MLClient per registry: creating it runs registry discovery, worth doing once."""
        if registry not in self._registry_clients:
            MLClient = _sdk().MLClient
            with self._azure(step="train", action=f"discovery of registry '{registry}'",
                             missing=f"registry '{registry}' does not exist; Phi is in 'azureml', "
                                     "Llama in 'azureml-meta'"):
                self._registry_clients[registry] = MLClient(self.credential, registry_name=registry,
                                                            show_progress=False, **self._options)
        return self._registry_clients[registry]

    @contextmanager
    def _azure(self, *, step: str, action: str, missing: str) -> Iterator[None]:
        """Turn azure-core/azure-ai-ml exceptions into ftp's one-line errors for this call."""
        from azure.core.exceptions import AzureError

        try:
            yield
        except AzureError as exc:
            raise translate_error(exc, step=step, action=action, missing=missing, scope=self._scope) from exc

    # --- data and model ---

    def upload_data(self, path: str | Path, name: str, version: str) -> str:
        """Upload a local JSONL file as a ``uri_file`` data asset and return its asset id.

        The job reads its data from the workspace, never from this machine; a fixed name and
        version lets a resumed run find the same asset instead of uploading a new one.
        """
        source = Path(path)
        if not source.is_file():
            raise UserError(f"{source}: no such file to upload as Azure ML data asset '{name}'")
        sdk = _sdk()
        asset = sdk.Data(path=str(source), type=sdk.AssetTypes.URI_FILE, name=name, version=str(version),
                         description="uploaded by ftp")
        with self._azure(step="train", action=f"upload of {source.name} as data asset {name}:{version}",
                         missing=f"the workspace's default datastore was not found in {self._scope}"):
            created = self._client().data.create_or_update(asset)
        return str(created.id)

    def resolve_model(self, name: str, label_or_version: str = "latest", registry: str | None = None) -> str:
        """The registry's id of the base model (``azureml://registries/.../versions/N``).

        A label such as ``latest`` is resolved now, so the job and the run's lineage record
        the exact version that was trained.
        """
        registry = registry or self.registry
        by = {"version": label_or_version} if label_or_version.isdigit() else {"label": label_or_version}
        client = self._registry_client(registry)
        with self._azure(step="train", action=f"look-up of model {name} ({label_or_version})",
                         missing=f"model '{name}' ({label_or_version}) is not in registry '{registry}'; check "
                                 "the name in the model catalog (Phi is in 'azureml', Llama in 'azureml-meta')"):
            model = client.models.get(name, **by)
        return str(model.id)

    # --- the job ---

    def submit(self, model_id: str, training_asset: str, validation_asset: str,
               hyperparameters: Mapping[str, object], output_prefix: str, job_name: str,
               experiment_name: str = "ftp") -> str:
        """Submit the ChatCompletion fine-tuning job and return its name.

        The caller picks ``job_name`` and records it before calling, so a resumed run asks about
        the same job instead of paying for a second one. A validation asset is required because
        ``create_finetuning_job`` (azure-ai-ml 1.35) fails on ``validation_data=None``.
        """
        if not validation_asset:
            raise UserError("the azureml trainer needs a validation file: give data.validation or let the split "
                            "step make one")
        sdk = _sdk()
        job = sdk.create_finetuning_job(
            task=sdk.FineTuningTaskType.CHAT_COMPLETION, model=model_id, training_data=training_asset,
            validation_data=validation_asset, hyperparameters=string_hyperparameters(hyperparameters),
            output_model_name_prefix=output_prefix, name=job_name, display_name=job_name,
            experiment_name=experiment_name)
        with self._azure(step="train", action=f"submission of fine-tuning job {job_name}",
                         missing=f"the model or a data asset of job {job_name} was not found; check model "
                                 f"{model_id} and assets {training_asset}, {validation_asset}"):
            created = self._client().jobs.create_or_update(job)
        return str(created.name)

    def _job(self, job_name: str) -> Any:
        with self._azure(step="train", action=f"status of job {job_name}",
                         missing=f"job '{job_name}' is not in {self._scope}; check the run's recorded job name"):
            return self._client().jobs.get(job_name)

    def status(self, job_name: str) -> str:
        """The job's status as Azure ML spells it (see :func:`normalise` for ftp's words)."""
        return _raw_status(self._job(job_name).status)

    def wait(self, job_name: str, on_status: Callable[[str], None] | None = None,
             timeout: float | None = None) -> str:
        """Follow the job until Completed, Failed or Canceled and return that status.

        ``on_status`` hears every change (raw status), which is how progress reaches the user.
        On timeout the job keeps running (and costing) in Azure, which the error says.
        """
        started = self._clock()
        last: str | None = None
        while True:
            raw = self.status(job_name)
            if raw != last and on_status is not None:
                on_status(raw)
            last = raw
            if is_terminal(raw):
                return raw
            if timeout is not None and self._clock() - started >= timeout:
                raise StepFailed("train", f"Azure ML job {job_name} is still {raw} after {timeout:g}s; it keeps "
                                          "running in Azure: resume the run later, or cancel the job")
            self._sleep(self.poll_interval)

    def cancel(self, job_name: str) -> None:
        """Ask Azure ML to cancel the job and wait until it has accepted (billing stops there)."""
        with self._azure(step="train", action=f"cancel of job {job_name}",
                         missing=f"job '{job_name}' is not in {self._scope}; nothing to cancel"):
            self._client().jobs.begin_cancel(job_name, **self._lro).result()

    def registered_model(self, job_name: str) -> str:
        """The fine-tuned model's ``azureml://locations/.../models/NAME/versions/N`` id.

        That is the form a serverless endpoint accepts for a workspace model; the version is the
        newest one of the output name, which the job registered when it completed.
        """
        job = self._job(job_name)
        raw = _raw_status(job.status)
        if raw != "Completed":
            raise StepFailed("train", f"Azure ML job {job_name} is {raw}; only a Completed job registers a model")
        name = _output_name(job)
        if not name:
            raise StepFailed("train", f"Azure ML job {job_name} has no registered_model output; was it submitted "
                                      "by ftp?")
        client = self._client()
        with self._azure(step="train", action=f"look-up of registered model {name}",
                         missing=f"job {job_name} completed but model '{name}' is not registered in {self._scope} "
                                 "yet; retry in a minute"):
            model = client.models.get(name, label="latest")
            workspace = client.workspaces.get(self.workspace)
        workspace_id = getattr(workspace, "_workspace_id", None)  # the SDK keeps the GUID private
        if not workspace_id or not workspace.location:
            raise StepFailed("train", f"Azure ML workspace {self.workspace} did not report its id and location; "
                                      "upgrade azure-ai-ml")
        return (f"azureml://locations/{workspace.location}/workspaces/{workspace_id}"
                f"/models/{model.name}/versions/{model.version}")

    # --- serving ---

    def marketplace_subscription(self, model_id: str, name: str) -> str | None:
        """Subscribe the workspace to a third-party model's offer; None for Microsoft's own (Phi).

        A serverless endpoint for a Llama or Mistral model is refused without the subscription,
        and creating one again is harmless (PUT), so it is safe on resume.
        """
        if not needs_marketplace_subscription(model_id):
            return None
        sdk = _sdk()
        subscription = sdk.MarketplaceSubscription(model_id=unversioned(model_id), name=name)
        with self._azure(step="deploy", action=f"marketplace subscription {name} for {unversioned(model_id)}",
                         missing=f"offer {unversioned(model_id)} was not found; check the base model id"):
            created = self._client().marketplace_subscriptions.begin_create_or_update(
                subscription, **self._lro).result()
        return str(created.name)

    def create_serverless_endpoint(self, name: str, model_id: str) -> dict[str, str]:
        """Serve ``model_id`` pay-per-token and return the endpoint's name, id and scoring URI.

        The key is not returned: it is fetched when a request is made, so it is never written to
        the run directory.
        """
        sdk = _sdk()
        endpoint = sdk.ServerlessEndpoint(name=name, model_id=model_id)
        with self._azure(step="deploy", action=f"creation of serverless endpoint {name}",
                         missing=f"model {model_id} was not found in {self._scope}; for a base model from a "
                                 "registry subscribe first (marketplace_subscription)"):
            created = self._client().serverless_endpoints.begin_create_or_update(endpoint, **self._lro).result()
        return {"name": str(created.name), "id": str(created.id or ""), "model_id": str(created.model_id),
                "scoring_uri": str(created.scoring_uri or ""),
                "provisioning_state": str(created.provisioning_state or "")}

    # --- managed online endpoints ---

    def online_key(self, endpoint: str) -> str:
        """A credential for the endpoint's scoring URI, sent as ``Authorization: Bearer``: its primary key
        (auth mode key), else the token Azure ML issues (aml_token) or an Entra ID token (aad_token)."""
        with self._azure(step="serve", action=f"credential listing of online endpoint {endpoint}",
                         missing=f"managed online endpoint '{endpoint}' is not in {self._scope}"):
            found = self._client().online_endpoints.get_keys(endpoint)
        secret = getattr(found, "primary_key", None) or getattr(found, "access_token", None)
        if not secret:
            raise StepFailed("serve", f"Azure ML online endpoint {endpoint} returned neither a key nor a token")
        return str(secret)

    def set_traffic(self, endpoint: str, traffic: Mapping[str, int], mirror: Mapping[str, int]) -> dict[str, int]:
        """Set the endpoint's ``traffic`` and ``mirror_traffic`` (deployment -> %) and return the traffic
        Azure ML then reports, as azure-ai-ml does it: get the endpoint, change its weights, and
        ``begin_create_or_update`` it (a PUT of the whole endpoint, followed to its end). Deployments
        left out get 0%."""
        client = self._client()
        with self._azure(step="deploy", action=f"traffic update of online endpoint {endpoint}",
                         missing=f"managed online endpoint '{endpoint}' or one of its deployments "
                                 f"({', '.join(sorted({**traffic, **mirror}))}) is not in {self._scope}"):
            current = client.online_endpoints.get(endpoint)
            current.traffic = dict(traffic)
            current.mirror_traffic = dict(mirror)
            updated = client.online_endpoints.begin_create_or_update(current).result()
        return {str(k): int(v) for k, v in (getattr(updated, "traffic", None) or {}).items()}


# --- SDK access -----------------------------------------------------------------------------------


class _SDK:
    """The few azure-ai-ml names the adapter uses, imported on first use."""

    def __init__(self) -> None:
        from azure.ai.ml import MLClient
        from azure.ai.ml.constants import AssetTypes
        from azure.ai.ml.entities import (
            Data,
            MarketplaceSubscription,
            ServerlessEndpoint,
        )
        from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

        self.MLClient = MLClient
        self.AssetTypes = AssetTypes
        self.Data = Data
        self.MarketplaceSubscription = MarketplaceSubscription
        self.ServerlessEndpoint = ServerlessEndpoint
        self.FineTuningTaskType = FineTuningTaskType
        self.create_finetuning_job = create_finetuning_job


@functools.cache
def _sdk() -> _SDK:
    """azure-ai-ml, or the one-line fix when the ``azure`` extra is not installed."""
    try:
        return _SDK()
    except ImportError as exc:
        raise UserError(f"backends.azure.kind azureml needs azure-ai-ml ({exc}); "
                        "pip install 'ftp[azure]'") from None


def _raw_status(status: object) -> str:
    """The SDK returns a str-Enum; its value is the documented spelling."""
    return str(getattr(status, "value", status) or "Unknown")


def _output_name(job: Any) -> str | None:
    """The registered_model output's name, whether the SDK gives an Output or a plain dict."""
    output = (getattr(job, "outputs", None) or {}).get("registered_model")
    if isinstance(output, Mapping):
        return output.get("name")
    return getattr(output, "name", None)
