"""A stateful fake of the Azure HTTP APIs the azure backend calls, built on ``responses`` callbacks.

It follows the shapes in /work/shared/reference/azure-api.md (the Azure REST spec's examples):

- **Entra ID** (login.microsoftonline.com): OpenID configuration, instance discovery and the v2.0 token
  endpoint, so azure-identity's real ``DefaultAzureCredential`` (through ``AZURE_CLIENT_ID`` /
  ``AZURE_TENANT_ID`` / ``AZURE_CLIENT_SECRET``) signs in; tokens remember their scope, and each API
  checks it gets a token of its own audience.
- **Azure OpenAI data plane**, dated (``/openai/...?api-version=``) and v1 (``/openai/v1/...``): files
  (pending -> processed, or error with ``status_details``), fine-tuning jobs (pending -> running ->
  succeeded with message and metrics events, checkpoints and a results.csv file; or failed with
  ``error``), list / cancel, and chat completions on deployments.
- **ARM** (management.azure.com): deployments PUT with an ``Azure-AsyncOperation`` long-running
  operation (Creating -> Succeeded), GET, and ARM's error shape.

The fake is not a model. Chat completions answer with a fixed text per deployment
(``ANSWER``), so an evaluation against it measures the plumbing, not the model.

Faults are injected per route with ``fail(route, ...)``: a status (429 with ``Retry-After``, 500, 400
quota), or a connection reset, either instead of handling the request or (``after_effect``) after the
request took effect, as when an answer is lost on the way back.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
import responses

ENDPOINT = "https://fake-aoai.openai.azure.com"
ARM = "https://management.azure.com"
LOGIN = "https://login.microsoftonline.com"
TENANT = "11111111-2222-3333-4444-555555555555"
DATA_SCOPE = "https://cognitiveservices.azure.com/.default"
ARM_SCOPE = "https://management.azure.com/.default"
ANSWER = "(fake answer from {deployment})"
BASE_MODELS = ("gpt-4o-mini-2024-07-18", "gpt-4.1-mini-2025-04-14")
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
# credentials DefaultAzureCredential would try before a service principal's secret
OTHER_CREDENTIALS = ("AZURE_FEDERATED_TOKEN_FILE", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME",
                     "IDENTITY_ENDPOINT", "MSI_ENDPOINT")


def sign_in_as_service_principal(monkeypatch: Any, secret: str, unset: tuple[str, ...] = ()) -> None:
    """The environment of a service principal with ``secret`` in the fake's tenant, and none of the
    other credentials (nor ``unset``) the Azure SDK could pick first."""
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", secret)
    for var in (*OTHER_CREDENTIALS, *unset):
        monkeypatch.delenv(var, raising=False)

Reply = tuple[int, dict[str, str], str] | Exception


@dataclass
class Fault:
    route: str
    status: int | None = None           # an HTTP status to answer with
    body: dict[str, Any] | None = None  # its JSON body (Azure's error shape by default)
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False                 # a connection reset instead of an answer
    interrupt: bool = False             # the client process dies here (KeyboardInterrupt, as Ctrl-C)
    crash: bool = False                 # the client process is killed here: nothing gets to save anything
    after_effect: bool = False          # handle the request first, then lose the answer
    times: int = 1
    skip: int = 0                       # let this many matching requests through first


def _hex() -> str:
    return secrets.token_hex(16)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


def _error(status: int, code: str, message: str) -> Reply:
    return _json(status, {"error": {"code": code, "message": message}})


class FakeAzure:
    """The state of one fake Azure tenant: an Azure OpenAI resource and its management plane."""

    def __init__(self, api_key: str = "fake-key-5f2c9a7e41d3") -> None:
        self.api_key = api_key
        self.client_secret = "fake-client-secret-8d1e"
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_bodies: list[dict[str, Any]] = []
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.deployments: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.chats: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.faults: list[Fault] = []
        self.file_error: str | None = None
        self.job_error: dict[str, Any] | None = None
        self.polls_per_state = 1
        self.overfit = False
        self.event_time = int(time.time())
        self.base_deployments: dict[str, str] = {}

    # --- configuring faults ----------------------------------------------------------------------

    def fail(self, route: str, **kwargs: Any) -> Fault:
        fault = Fault(route, **kwargs)
        self.faults.append(fault)
        return fault

    def throttle(self, route: str, times: int, retry_after: str = "7") -> Fault:
        return self.fail(route, status=429, times=times, headers={"Retry-After": retry_after},
                         body={"error": {"code": "tooManyRequests", "message": "Rate limit is exceeded."}})

    def _fault(self, route: str) -> Fault | None:
        for fault in self.faults:
            if fault.route == route and fault.times > 0:
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                return fault
        return None

    @staticmethod
    def _fault_reply(fault: Fault) -> Reply:
        if fault.interrupt:
            raise KeyboardInterrupt
        if fault.crash:
            raise SystemExit(137)  # as SIGKILL: not an Exception, so no handler of ftp's records it
        if fault.reset:
            return requests.ConnectionError("Connection reset by peer")
        body = fault.body or {"error": {"code": "internalFailure", "message": "The service failed."}}
        return _json(fault.status or 500, body, fault.headers)

    # --- installing ------------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> None:
        data = re.escape(ENDPOINT) + r"/openai(?:/v1)?/"
        q = r"(?:\?.*)?$"
        arm_dep = (re.escape(ARM) + r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
                   r"Microsoft\.CognitiveServices/accounts/([^/]+)/deployments/([^/?]+)" + q)
        routes: list[tuple[str, str, str, Any]] = [
            ("GET", re.escape(LOGIN) + r"/[^/]+/v2\.0/\.well-known/openid-configuration" + q, "aad", self._openid),
            ("GET", re.escape(LOGIN) + r"/common/discovery/instance" + q, "aad", self._instance),
            ("POST", re.escape(LOGIN) + r"/[^/]+/oauth2/v2\.0/token" + q, "token", self._token),
            ("POST", data + r"files" + q, "upload", self._upload),
            ("GET", data + r"files" + q, "files", self._list_files),
            ("GET", data + r"files/([^/?]+)/content" + q, "content", self._content),
            ("GET", data + r"files/([^/?]+)" + q, "file", self._get_file),
            ("POST", data + r"fine_tuning/jobs" + q, "create_job", self._create_job),
            ("GET", data + r"fine_tuning/jobs" + q, "jobs", self._list_jobs),
            ("GET", data + r"fine_tuning/jobs/([^/?]+)/events" + q, "events", self._events),
            ("GET", data + r"fine_tuning/jobs/([^/?]+)/checkpoints" + q, "checkpoints", self._checkpoints),
            ("POST", data + r"fine_tuning/jobs/([^/?]+)/cancel" + q, "cancel", self._cancel),
            ("GET", data + r"fine_tuning/jobs/([^/?]+)" + q, "job", self._get_job),
            ("POST", data + r"deployments/([^/]+)/chat/completions" + q, "chat", self._chat),
            ("POST", data + r"chat/completions" + q, "chat", self._chat_v1),
            ("PUT", arm_dep, "arm_put", self._put_deployment),
            ("GET", arm_dep, "arm_get", self._get_deployment),
            ("GET", re.escape(ARM) + r"/subscriptions/[^/]+/providers/Microsoft\.CognitiveServices/locations/"
                    r"[^/]+/operationResults/([^/?]+)" + q, "arm_op", self._operation),
        ]
        for method, pattern, route, handler in routes:
            rsps.add_callback(method, re.compile(pattern), callback=self._wrap(route, re.compile(pattern), handler))

    def _wrap(self, route: str, pattern: re.Pattern[str], handler: Any) -> Any:
        def callback(request: requests.PreparedRequest) -> Reply:
            self.calls.append((route, request.url or ""))
            fault = self._fault(route)
            if fault is not None and not fault.after_effect:
                return self._fault_reply(fault)
            denied = self._authorise(route, request)
            if denied is not None:
                return denied
            match = pattern.match(request.url or "")
            assert match is not None
            reply = handler(request, *match.groups())
            if fault is not None:
                return self._fault_reply(fault)
            return reply

        return callback

    # --- auth ------------------------------------------------------------------------------------

    def _authorise(self, route: str, request: requests.PreparedRequest) -> Reply | None:
        if route in ("aad", "token"):
            return None
        auth = request.headers.get("Authorization", "")
        scope = self.tokens.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        if route.startswith("arm"):
            if scope != ARM_SCOPE:
                return _error(401, "InvalidAuthenticationToken", "The access token is invalid.")
            return None
        if request.headers.get("api-key") == self.api_key or scope == DATA_SCOPE:
            return None
        return _error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")

    def _openid(self, request: requests.PreparedRequest) -> Reply:
        base = f"{LOGIN}/{TENANT}"
        return _json(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                           "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                           "issuer": f"{LOGIN}/{TENANT}/v2.0", "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                           "end_session_endpoint": f"{base}/oauth2/v2.0/logout"})

    def _instance(self, request: requests.PreparedRequest) -> Reply:
        return _json(200, {"tenant_discovery_endpoint": f"{LOGIN}/{TENANT}/v2.0/.well-known/openid-configuration",
                           "api-version": "1.1", "metadata": []})

    def _token(self, request: requests.PreparedRequest) -> Reply:
        form = parse_qs(request.body if isinstance(request.body, str) else (request.body or b"").decode())
        if form.get("client_secret", [""])[0] != self.client_secret:
            return _json(401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret."})
        scope = next((s for s in form.get("scope", [""])[0].split() if s.endswith("/.default")), "")
        token = f"fake-token-{_hex()}"
        self.tokens[token] = scope
        return _json(200, {"token_type": "Bearer", "expires_in": 3600, "ext_expires_in": 3600, "access_token": token})

    # --- files -----------------------------------------------------------------------------------

    def _upload(self, request: requests.PreparedRequest) -> Reply:
        header = f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + (request.body or b""))
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        if fields.get("purpose", (None, b""))[1] != b"fine-tune":
            return _error(400, "invalidPayload", "purpose must be fine-tune")
        if "file" not in fields:
            return _error(400, "invalidPayload", "no file was sent")
        filename, content = fields["file"]
        file_id = f"file-{_hex()}"
        self.files[file_id] = {"status": "pending", "purpose": "fine-tune", "filename": filename, "id": file_id,
                               "created_at": int(time.time()), "object": "file", "bytes": len(content), "_polls": 0}
        self.contents[file_id] = content
        return _json(201, self._public(self.files[file_id]), {"Location": f"{ENDPOINT}/openai/files/{file_id}"})

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _list_files(self, request: requests.PreparedRequest) -> Reply:
        return _json(200, {"object": "list", "data": [self._public(f) for f in self.files.values()]})

    def _get_file(self, request: requests.PreparedRequest, file_id: str) -> Reply:
        item = self.files.get(file_id)
        if item is None:
            return _error(404, "notFound", f"File with id '{file_id}' not found.")
        item["_polls"] += 1
        if item["status"] == "pending" and item["_polls"] >= self.polls_per_state:
            if self.file_error and item["purpose"] == "fine-tune":
                item.update(status="error", status_details=self.file_error)
            else:
                item["status"] = "processed"
        return _json(200, self._public(item))

    def _content(self, request: requests.PreparedRequest, file_id: str) -> Reply:
        if file_id not in self.contents:
            return _error(404, "notFound", f"File with id '{file_id}' not found.")
        return 200, {"Content-Type": "application/octet-stream"}, self.contents[file_id].decode("utf-8")

    # --- jobs ------------------------------------------------------------------------------------

    def _create_job(self, request: requests.PreparedRequest) -> Reply:
        body = json.loads(request.body or b"{}")
        self.job_bodies.append(body)
        for key in ("model", "training_file"):
            if not body.get(key):
                return _error(400, "invalidPayload", f"'{key}' is required.")
        if body["model"] not in BASE_MODELS:
            return _error(400, "invalidPayload", f"The specified base model does not support fine-tuning: {body['model']}")
        for key in ("training_file", "validation_file"):
            file_id = body.get(key)
            if file_id and self.files.get(file_id, {}).get("status") != "processed":
                return _error(400, "invalidPayload", f"The file {file_id} is not processed.")
        hp = body.get("hyperparameters") or ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
        job_id = f"ftjob-{_hex()}"
        job = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "status": "pending",
               "model": body["model"], "training_file": body["training_file"],
               "validation_file": body.get("validation_file"), "hyperparameters": hp, "suffix": body.get("suffix"),
               "seed": body.get("seed"), "result_files": [], "_polls": 0}
        if "method" in body:
            job["method"] = body["method"]
        self.jobs[job_id] = job
        self.events[job_id] = []
        self._event(job_id, "Job enqueued. Waiting for jobs ahead to complete.")
        return _json(201, self._public(job), {"Location": f"{ENDPOINT}/openai/fine_tuning/jobs/{job_id}"})

    def _event(self, job_id: str, message: str, kind: str = "message", data: Any = None, level: str = "info") -> None:
        self.event_time += 1  # a second between events, as a real job's are spread out
        event = {"id": f"ftevent-{_hex()}", "created_at": self.event_time, "level": level, "message": message,
                 "type": kind, "object": "fine_tuning.job.event"}
        if data is not None:
            event["data"] = data
        self.events[job_id].append(event)

    def _list_jobs(self, request: requests.PreparedRequest) -> Reply:
        query = parse_qs(urlparse(request.url or "").query)
        jobs = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        after = query.get("after", [None])[0]
        if after:
            ids = [j["id"] for j in jobs]
            jobs = jobs[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        return _json(200, {"object": "list", "data": [self._public(j) for j in jobs[:limit]],
                           "has_more": len(jobs) > limit})

    def steps_of(self, job: dict[str, Any]) -> int:
        lines = self.contents[job["training_file"]].decode().count("\n")
        batch = int(job["hyperparameters"].get("batch_size") or 8)
        return max(1, -(-lines // batch)) * int(job["hyperparameters"].get("n_epochs") or 3)

    def _metrics(self, step: int, total: int) -> dict[str, float]:
        """A loss that falls, validation following a little above: what a healthy job reports. With
        ``overfit`` validation turns up halfway while training loss keeps falling."""
        frac = step / total
        valid = 2.1 * (1 - 0.75 * frac)
        if self.overfit and frac > 0.5:
            valid = 2.1 * (1 - 0.75 * 0.5) + 1.5 * (frac - 0.5)
        return {"step": step, "train_loss": round(2.0 * (1 - 0.8 * frac), 4),
                "train_mean_token_accuracy": round(0.5 + 0.45 * frac, 4),
                "valid_loss": round(valid, 4), "valid_mean_token_accuracy": round(0.45 + 0.45 * frac, 4)}

    def _get_job(self, request: requests.PreparedRequest, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"Job {job_id} not found.")
        if job["status"] not in ("succeeded", "failed", "cancelled"):
            job["_polls"] += 1
            self._advance(job)
        return _json(200, self._public(job))

    def _advance(self, job: dict[str, Any]) -> None:
        """pending -> running (first half of the metrics) -> running (the rest) -> succeeded or failed."""
        phase = job["_polls"] // self.polls_per_state
        total = self.steps_of(job)
        if phase >= 1 and job["status"] == "pending":
            job["status"] = "running"
            self._event(job["id"], "Job started.")
            for step in range(1, total // 2 + 1):
                self._event(job["id"], f"Step {step}/{total}", "metrics", self._metrics(step, total))
        elif phase >= 2 and job["status"] == "running" and not job.get("_second_half"):
            job["_second_half"] = True
            for step in range(total // 2 + 1, total + 1):
                self._event(job["id"], f"Step {step}/{total}", "metrics", self._metrics(step, total))
        elif phase >= 3 and job["status"] == "running":
            self._finish(job, total)

    def _finish(self, job: dict[str, Any], total: int) -> None:
        job["finished_at"] = int(time.time())
        if self.job_error is not None:
            job.update(status="failed", error=self.job_error)
            self._event(job["id"], f"Job failed: {self.job_error.get('message')}", level="error")
            return
        short = job["id"].removeprefix("ftjob-")
        job.update(status="succeeded", fine_tuned_model=f"{job['model']}.ft-{short}",
                   trained_tokens=total * 100)
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["step", "train_loss", "train_mean_token_accuracy", "valid_loss",
                         "validation_mean_token_accuracy", "full_valid_loss", "full_valid_mean_token_accuracy"])
        for step in range(1, total + 1):
            m = self._metrics(step, total)
            full = (round(m["valid_loss"] * 0.98, 4), m["valid_mean_token_accuracy"]) if step == total else ("", "")
            writer.writerow([step, m["train_loss"], m["train_mean_token_accuracy"], m["valid_loss"],
                             m["valid_mean_token_accuracy"], *full])
        result_id = f"file-{_hex()}"
        self.files[result_id] = {"id": result_id, "object": "file", "purpose": "fine-tune-results",
                                 "filename": "results.csv", "status": "processed", "created_at": int(time.time()),
                                 "bytes": len(out.getvalue()), "_polls": 0}
        self.contents[result_id] = out.getvalue().encode()
        job["result_files"] = [result_id]
        epochs = int(job["hyperparameters"].get("n_epochs") or 3)
        job["_checkpoints"] = [
            {"id": f"ftchkpt-{_hex()}", "created_at": int(time.time()), "object": "fine_tuning.job.checkpoint",
             "fine_tuned_model_checkpoint": f"{job['fine_tuned_model']}:ckpt-step-{total * e // epochs}",
             "step_number": total * e // epochs, "metrics": self._metrics(total * e // epochs, total),
             "fine_tuning_job_id": job["id"]} for e in range(max(1, epochs - 2), epochs + 1)]
        self._event(job["id"], "Job succeeded.")

    def _events(self, request: requests.PreparedRequest, job_id: str) -> Reply:
        query = parse_qs(urlparse(request.url or "").query)
        events = list(reversed(self.events.get(job_id, [])))  # newest first, as the service lists them
        after = query.get("after", [None])[0]
        if after:
            ids = [e["id"] for e in events]
            events = events[ids.index(after) + 1:] if after in ids else []
        limit = int(query.get("limit", ["20"])[0])
        return _json(200, {"object": "list", "data": events[:limit], "has_more": len(events) > limit})

    def _checkpoints(self, request: requests.PreparedRequest, job_id: str) -> Reply:
        job = self.jobs[job_id]
        return _json(200, {"object": "list", "data": list(reversed(job.get("_checkpoints", []))), "has_more": False})

    def _cancel(self, request: requests.PreparedRequest, job_id: str) -> Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return _error(404, "notFound", f"Job {job_id} not found.")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return _error(400, "unexpectedEntityState", f"The job cannot be cancelled because it is {job['status']}.")
        job["status"] = "cancelled"
        self._event(job_id, "Job cancelled.")
        return _json(200, self._public(job))

    # --- inference -------------------------------------------------------------------------------

    def _chat(self, request: requests.PreparedRequest, deployment: str) -> Reply:
        known = self.deployments.get(deployment, {}).get("properties", {}).get("provisioningState") == "Succeeded"
        if not known and deployment not in self.base_deployments:
            return _error(404, "DeploymentNotFound", "The API deployment for this resource does not exist.")
        body = json.loads(request.body or b"{}")
        self.chats.append({"deployment": deployment, **body})
        answer, usage = ANSWER.format(deployment=deployment), {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if body.get("stream"):
            return self._chat_stream(deployment, answer, usage, bool((body.get("stream_options") or {}).get("include_usage")))
        return _json(200, {"id": f"chatcmpl-{_hex()}", "object": "chat.completion", "model": deployment,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": answer}}],
                           "usage": usage})

    @staticmethod
    def _chat_stream(deployment: str, answer: str, usage: dict[str, int], include_usage: bool) -> Reply:
        """``stream: true``: SSE chunks (the role first, the answer word by word, the finish reason, the
        usage chunk when asked for), then ``data: [DONE]``, as the data plane streams them."""
        cid = f"chatcmpl-{_hex()}"

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            event = {"id": cid, "object": "chat.completion.chunk", "created": 1764583200, "model": deployment,
                     "choices": choices, **extra}
            return f"data: {json.dumps(event)}\n\n"

        words = answer.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        text = chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        text += "".join(chunk([{"index": 0, "delta": {"content": p}, "finish_reason": None}]) for p in pieces)
        text += chunk([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if include_usage:
            text += chunk([], usage=usage)
        return 200, {"Content-Type": "text/event-stream"}, text + "data: [DONE]\n\n"

    def _chat_v1(self, request: requests.PreparedRequest) -> Reply:
        return self._chat(request, json.loads(request.body or b"{}").get("model", ""))

    # --- ARM deployments -------------------------------------------------------------------------

    def _put_deployment(self, request: requests.PreparedRequest, sub: str, rg: str, account: str, name: str) -> Reply:
        body = json.loads(request.body or b"{}")
        model = ((body.get("properties") or {}).get("model") or {}).get("name", "")
        fine_tuned = {j.get("fine_tuned_model") for j in self.jobs.values()}
        if model not in fine_tuned and model not in BASE_MODELS:
            return _error(400, "DeploymentModelNotSupported", f"The model '{model}' is not supported.")
        resource = {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/"
                          f"accounts/{account}/deployments/{name}",
                    "name": name, "type": "Microsoft.CognitiveServices/accounts/deployments", "sku": body.get("sku"),
                    "properties": {"model": body["properties"]["model"], "provisioningState": "Creating"}}
        self.deployments[name] = resource
        op = f"op-{_hex()}"
        self.operations[op] = {"deployment": name, "polls": 0}
        url = f"{ARM}/subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/eastus/operationResults/{op}"
        return _json(201, resource, {"Azure-AsyncOperation": url, "Retry-After": "0"})

    def _operation(self, request: requests.PreparedRequest, op: str) -> Reply:
        state = self.operations[op]
        state["polls"] += 1
        if state["polls"] < 2:
            return _json(200, {"status": "InProgress"}, {"Retry-After": "0"})
        self.deployments[state["deployment"]]["properties"]["provisioningState"] = "Succeeded"
        return _json(200, {"status": "Succeeded"})

    def _get_deployment(self, request: requests.PreparedRequest, sub: str, rg: str, account: str, name: str) -> Reply:
        if name not in self.deployments:
            return _error(404, "DeploymentNotFound", f"Deployment {name} not found.")
        return _json(200, self.deployments[name])

    # --- for assertions --------------------------------------------------------------------------

    def count(self, route: str) -> int:
        return sum(1 for r, _ in self.calls if r == route)


QUOTA_ERROR = {"error": {"code": "InsufficientQuota", "message": (
    "This operation require 50 new capacity in quota Tokens Per Minute (thousands) - gpt-4.1-mini - FineTune, "
    "which is bigger than the current available capacity 0. The current quota usage is 50 and the quota limit is 50.")}}


class FakeClock:
    """Time that passes only when the code under test waits: the waits are recorded, nothing sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
