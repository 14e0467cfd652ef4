"""``ftp serve`` for Azure versions: each request forwarded to the version's own deployment.

Azure OpenAI (``kind: openai``) serves a fine-tuned model from a deployment, one per version under
blue-green; ftp's router picks the version by its slot weights, and this engine sends the request to
that version's deployment through the backend's ``DataPlane`` (same URL style, api-version, API key or
Entra ID token and retries as the train step): ``POST {endpoint}/openai/deployments/{name}/chat/completions``.
The deployment name is the one ``AzureDeployer.deploy`` recorded (``Provisioned.details["name"]``,
else the name in the recorded URL, else ``backends.azure.deployment.name`` / ``<name>-v<version>``),
and the resource is the recorded URL's, so ``ftp serve`` without a pipeline file still reaches it.
``stream()`` forwards with ``stream: true`` and yields Azure's deltas as they arrive (SSE, with
``stream_options.include_usage`` where the api-version has it), then the whole ``Completion``.

Azure ML (``kind: azureml``) versions answer from what the deploy step recorded: a serverless
endpoint (``POST {scoring_uri}/v1/chat/completions`` with its key in ``Authorization``, as the
evaluation calls it), or a deployment of a managed online endpoint (the endpoint's scoring URI with
``Authorization: Bearer <key or token>`` and the ``azureml-model-deployment`` header pinning that
deployment, whatever the endpoint's own traffic split says). Keys are listed once, on the first
request, and kept in memory only. ``stream()`` there calls once and yields the whole text.

Azure's errors become one line (``AzureError``, an ``FtpError``): the version, the request, the
status, Azure's code and message. A version with no deployment on record is a ``UserError`` naming
the deploy step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import ValidationError

from ftp.data.files import message_text
from ftp.errors import RequestRejected, UserError
from ftp.serve.forward import chat_fields, finish_of, pieces_of, sse_events
from ftp.types import Completion, GenerationRequest, ModelVersion, Provisioned, ServeContext

from .deploy import deployment_of, name_for, resource_of
from .http import AzureError, Http
from .settings import V1, AzureSettings

STREAM_OPTIONS_SINCE = "2024-09-01"  # the first data-plane api-version with stream_options.include_usage
DEFAULT_TIMEOUT = 120.0  # ServeLimits.timeout_s, when the context does not say
GONE = ("; Azure deletes a fine-tuned model's deployment after 15 days without calls: deploy the version again "
        "(ftp run PIPELINE --backend azure --steps deploy)")


def serving_settings(context: ServeContext) -> tuple[AzureSettings, float]:
    """``backends.azure`` for serving, and the seconds a request may take (``serve.limits.timeout_s``):
    retries that would outlast the server's own timeout are cut to it, as nobody waits for them."""
    # Only backends.azure's own keys: ftp serve -p hands every engine the block of the backend it read the
    # file for (the default, local), whose keys mean nothing here; defaults and the recorded URLs then serve.
    raw = {k: v for k, v in (context.backend_settings or {}).items() if k in AzureSettings.model_fields}
    try:
        settings = AzureSettings.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"backends.azure.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    limits = (context.serve or {}).get("limits") or {}
    timeout = float(limits.get("timeout_s") or DEFAULT_TIMEOUT)
    retry = settings.retry.model_copy(update={"max_total": min(settings.retry.max_total, timeout)})
    return settings.model_copy(update={"retry": retry}), timeout


def not_deployed(label: str, why: str) -> UserError:
    return UserError(f"{label} cannot be served from Azure: {why}; deploy it first (ftp run PIPELINE --backend azure "
                     "--steps deploy)")


def estimate_tokens(text: str) -> int:
    """Azure's own count when a reply has none: o200k_base (the gpt-4o / gpt-4.1 family) or an estimate."""
    from .tokens import count_text

    return count_text(text)


def completion(text: str, finish: str, usage: Any, request: GenerationRequest) -> Completion:
    """The Completion with Azure's token counts, or counted here when Azure gave none."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = usage.get("prompt_tokens")
    if prompt is None:
        prompt = estimate_tokens("\n".join(message_text(m.get("content")) for m in request.messages))
    used = usage.get("completion_tokens")
    return Completion(text=text, finish_reason="length" if finish == "length" else "stop", prompt_tokens=int(prompt),
                      completion_tokens=int(used if used is not None else estimate_tokens(text)))


def completion_of(reply: Any, request: GenerationRequest, label: str) -> Completion:
    """An OpenAI ``chat.completion`` body (or Azure ML's ``{"output": text}``) as a Completion."""
    if isinstance(reply, dict) and isinstance(reply.get("output"), str):
        return completion(reply["output"], "stop", None, request)
    choices = reply.get("choices") if isinstance(reply, dict) else None
    if not choices or not isinstance(choices[0], dict):
        shape = ", ".join(sorted(reply)[:6]) if isinstance(reply, dict) else type(reply).__name__
        raise AzureError(f"{label}: Azure answered without a choice (got: {shape or 'an empty object'})")
    choice = choices[0]
    text = message_text((choice.get("message") or {}).get("content"))
    return completion(text, finish_of(choice.get("finish_reason")), reply.get("usage"), request)


def stream_failure(label: str) -> Callable[[str, dict[str, Any] | None], Exception]:
    """How a broken Azure stream is reported: one line, with Azure's code."""
    def fail(reason: str, error: dict[str, Any] | None) -> Exception:
        return AzureError(f"{label}: Azure {reason}", code=(error or {}).get("code"))

    return fail


def _forwarded(label: str, call: Callable[[], Any]) -> Any:
    """``call()``, with its AzureError prefixed by the version (and the fix for a deployment that is gone)."""
    try:
        return call()
    except AzureError as exc:
        if exc.status == 400:  # the request as sent (a content filter, a prompt too long): the client's to fix
            raise RequestRejected(f"{label}: {exc}", code=str(exc.code) if exc.code else None) from None
        hint = GONE if exc.status == 404 and "deploymentnotfound" in str(exc.code or "").lower() else ""
        raise AzureError(f"{label}: {exc}{hint}", status=exc.status, code=exc.code, transient=exc.transient) from None


class PerThread:
    """One ``Http`` (a requests session) per serving thread: sessions are not meant to be shared."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._local, self._lock = make, threading.local(), threading.Lock()
        self._made: list[Any] = []

    def get(self) -> Any:
        made = getattr(self._local, "made", None)
        if made is None:
            made = self._local.made = self._make()
            with self._lock:
                self._made.append(made)
        return made

    def close(self) -> None:
        with self._lock:
            for made in self._made:
                session = getattr(getattr(made, "http", made), "session", None)
                if session is not None:
                    session.close()
            self._made.clear()


class DeploymentModel:
    """A version behind its Azure OpenAI deployment; safe to call from several threads."""

    def __init__(self, label: str, deployment: str, settings: AzureSettings, timeout: float) -> None:
        from .dataplane import DataPlane

        self.version, self.deployment, self.settings = label, deployment, settings
        self.label = f"{label} on Azure OpenAI deployment {deployment} ({settings.endpoint})"

        def plane() -> Any:
            made = DataPlane(settings)
            made.http.timeout = timeout
            return made

        self.planes = PerThread(plane)

    def _path_body(self, request: GenerationRequest, stream: bool) -> tuple[str, dict[str, Any]]:
        body = chat_fields(request)
        if stream:
            body["stream"] = True
            version = self.settings.api_version
            if version == V1 or version >= STREAM_OPTIONS_SINCE:
                body["stream_options"] = {"include_usage": True}
        return self.planes.get().chat_completions(self.deployment, body)

    def complete(self, request: GenerationRequest) -> Completion:
        path, body = self._path_body(request, stream=False)
        reply = _forwarded(self.version, lambda: self.planes.get().post(path, body))
        return completion_of(reply, request, self.version)

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        import requests

        path, body = self._path_body(request, stream=True)
        plane = self.planes.get()
        response = _forwarded(self.version, lambda: plane.http.request(
            "POST", plane.url(path), params=plane.params(), json=body, stream=True))
        if "json" in str(response.headers.get("Content-Type", "")):  # answered whole despite stream: true
            done = completion_of(response.json(), request, self.version)
            yield from ([done.text] if done.text else [])
            yield done
            return
        try:
            yield from pieces_of(sse_events(response.iter_lines(), stream_failure(self.version)),
                                 lambda text, finish, usage: completion(text, finish, usage, request))
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise AzureError(f"{self.version}: the stream from deployment {self.deployment} broke off "
                             f"({type(exc).__name__})", transient=True) from None
        finally:
            response.close()

    def close(self) -> None:
        self.planes.close()


class EndpointModel:
    """A ``kind: azureml`` version behind a serverless endpoint or a managed online deployment."""

    def __init__(self, label: str, what: str, url: str, key: Callable[[], str], settings: AzureSettings,
                 timeout: float, bearer: bool = False, deployment: str | None = None) -> None:
        self.version, self.url, self.bearer, self.deployment = label, url, bearer, deployment
        self.label = f"{label} on {what}"
        self._key_source, self._lock = key, threading.Lock()
        self._key: str | None = None
        self.https = PerThread(lambda: Http(self._headers, settings.retry, timeout=timeout))

    def _headers(self) -> dict[str, str]:
        with self._lock:
            if self._key is None:
                self._key = self._key_source()
        headers = {"Authorization": f"Bearer {self._key}" if self.bearer else str(self._key)}
        if self.deployment:
            headers["azureml-model-deployment"] = self.deployment
        return headers

    def complete(self, request: GenerationRequest) -> Completion:
        body = chat_fields(request)
        reply = _forwarded(self.version, lambda: self.https.get().json("POST", self.url, json=body))
        return completion_of(reply, request, self.version)

    def stream(self, request: GenerationRequest) -> Iterator[str | Completion]:
        done = self.complete(request)
        if done.text:
            yield done.text
        yield done

    def close(self) -> None:
        self.https.close()


class AzureServingEngine:
    """``ftp serve``'s engine for backend ``azure``: one forwarder per version, nothing loaded locally."""

    name = "azure"

    def __init__(self, context: ServeContext, adapter: Any = None) -> None:
        self.settings, self.timeout = serving_settings(context)
        self._adapter = adapter  # kind azureml: the AzureMLAdapter (tests hand in one on fake credentials)
        self._served: list[DeploymentModel | EndpointModel] = []

    def load(self, version: ModelVersion, endpoint: Provisioned | None) -> DeploymentModel | EndpointModel:
        label = f"{version.name}:{version.version}"
        if endpoint is None and version.model.kind == "base":
            return self._base(version)
        if endpoint is None:
            raise not_deployed(label, "no deployment of it is on record (deploy.store)")
        details = endpoint.details or {}
        state = str(details.get("state") or details.get("provisioning_state") or "")
        if state and state.lower() != "succeeded":
            raise not_deployed(label, f"its deployment {details.get('name') or '(unnamed)'} is {state}")
        azureml = (self.settings.kind == "azureml" or version.artifact.startswith("azureml:")
                   or "online_endpoint" in details)
        served = self._azureml(label, endpoint) if azureml else self._openai(label, version, endpoint)
        self._served.append(served)
        return served

    def _base(self, version: ModelVersion) -> DeploymentModel:
        """The base model (``NAME:base``) through ``evaluation.base_deployment``, the deployment of it that
        the evaluation compares against (Azure OpenAI only)."""
        label = f"{version.name}:base ({version.base_model})"
        named = self.settings.evaluation.base_deployment
        if self.settings.kind == "azureml" or not named or not self.settings.endpoint:
            raise UserError(f"{label} has no Azure deployment to answer from; set backends.azure.evaluation."
                            "base_deployment (and endpoint) to an existing Azure OpenAI deployment of the base model")
        served = DeploymentModel(label, named, self.settings, self.timeout)
        self._served.append(served)
        return served

    def _openai(self, label: str, version: ModelVersion, endpoint: Provisioned) -> DeploymentModel:
        name = (str(endpoint.details.get("name") or "") or deployment_of(endpoint.endpoint)
                or name_for(self.settings, version))
        resource = resource_of(endpoint.endpoint) or self.settings.endpoint
        if not resource:
            raise UserError(f"{label}: no Azure OpenAI endpoint on record or in backends.azure.endpoint; export "
                            "AZURE_OPENAI_ENDPOINT=https://RESOURCE.openai.azure.com and serve with the pipeline file")
        from .settings import https_url

        try:
            settings = self.settings.model_copy(update={"endpoint": https_url(resource).rstrip("/")})
        except ValueError as exc:
            raise UserError(f"{label}: the recorded endpoint {resource!r} cannot be used: {exc}") from None
        return DeploymentModel(label, name, settings, self.timeout)

    def _azureml(self, label: str, endpoint: Provisioned) -> EndpointModel:
        from .azureml_trainer import check_settings, make_adapter
        from .serverless import key

        details = endpoint.details or {}
        if self._adapter is None:
            check_settings(self.settings)
            self._adapter = make_adapter(self.settings)
        adapter = self._adapter
        online = details.get("online_endpoint")
        if online:
            deployment = str(details.get("deployment") or "")
            url = str(details.get("scoring_uri") or endpoint.endpoint or "")
            if not deployment or not url:
                raise not_deployed(label, f"the record of online endpoint {online} names no deployment or scoring URI")
            return EndpointModel(label, f"Azure ML online deployment {online}/{deployment}", url,
                                 lambda: adapter.online_key(str(online)), self.settings, self.timeout, bearer=True,
                                 deployment=deployment)
        name, uri = str(details.get("name") or ""), str(endpoint.endpoint or details.get("endpoint") or "")
        if not name or not uri:
            raise not_deployed(label, "its serverless endpoint record has no name or scoring URI")
        return EndpointModel(label, f"Azure ML serverless endpoint {name}", uri.rstrip("/") + "/v1/chat/completions",
                             lambda: key(adapter, name, "serve"), self.settings, self.timeout)

    def close(self) -> None:
        for served in self._served:
            served.close()
        self._served.clear()
