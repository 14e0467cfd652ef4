"""The train step on Azure OpenAI: upload, cost guard, submit once, follow, bring the numbers home.

Order matters for money: file ids are recorded as soon as Azure returns them, a submission marker is
recorded before the job is created, and the job id right after, before any polling. A resumed run
(``ftp run --resume``) finds the job id and reattaches; one that crashed between sending the
submission and recording its id finds the job by its files and time instead of creating another.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from ftp.errors import StepFailed, UserError
from ftp.run.store import atomic_write
from ftp.types import ModelRef, StepContext, TrainRequest, TrainResult

from . import cost, files, http, jobs, results
from .dataplane import DataPlane
from .http import AzureError
from .settings import AzureSettings, default_suffix
from .train_settings import whole_epochs

log = logging.getLogger("ftp.azure")
FILES, SUBMISSION, JOB, JOB_METRICS = "azure_files", "azure_submission", "azure_job", "azure_job_metrics"


def job_hyperparameters(request: TrainRequest, settings: AzureSettings) -> dict[str, Any]:
    hp: dict[str, Any] = {"n_epochs": whole_epochs(request.settings.epochs), "batch_size": request.settings.batch_size}
    if settings.learning_rate_multiplier is not None:
        hp["learning_rate_multiplier"] = settings.learning_rate_multiplier
    return hp


class OpenAIFineTuning:
    """One train step's conversation with Azure OpenAI (also used by predictor and cancel)."""

    def __init__(self, settings: AzureSettings, ctx: StepContext) -> None:
        self.settings = settings
        self.ctx = ctx
        self.plane = DataPlane(settings)
        self.clock = http.CLOCK

    # --- upload ----------------------------------------------------------------------------------

    def upload(self, request: TrainRequest) -> tuple[str, str | None]:
        known: dict[str, Any] = dict(self.ctx.resource(FILES) or {})

        def remember(sha: str, entry: dict[str, Any]) -> None:
            if known.get(sha) != entry:
                known[sha] = entry
                self.ctx.record_resource(FILES, dict(known))

        ids: list[str | None] = []
        for ref, split in ((request.train, "train"), (request.validation, "validation")):
            if ref is None:
                ids.append(None)
                continue
            self.ctx.reporter.event("azure", message=f"uploading {split} data ({ref.examples} examples)")
            uploaded = files.ensure_uploaded(self.plane, ref.path, ref.sha256, split, known, self.settings.poll,
                                             self.clock, remember)
            self.ctx.reporter.event("azure", message=f"{split} file {uploaded.id} processed")
            ids.append(uploaded.id)
        return ids[0] or "", ids[1]

    # --- submit ----------------------------------------------------------------------------------

    def guard_cost(self, request: TrainRequest, epochs: int) -> cost.CostEstimate:
        est = cost.estimate(request.train.path, epochs, request.base_model, self.settings)
        self.ctx.reporter.event("cost_estimate", message=f"cost estimate: {est.describe()}", tokens=est.tokens,
                                epochs=est.epochs, cost=est.cost, currency=est.currency)
        cost.enforce_limit(est, self.settings)
        price = f" (about {est.cost:.2f} {est.currency})" if est.cost is not None else ""
        cost.confirm_submission(self.ctx, f"Submit the fine-tuning job of {request.base_model} to Azure{price}?")
        return est

    def adopt_submitted(self) -> dict[str, Any] | None:
        """The job an earlier attempt sent but never recorded (it died between the two), if Azure has it.

        Looked for before anything else, the cost question included: that job is already paid for.
        """
        marker = self.ctx.resource(SUBMISSION)
        if not marker:
            return None
        found = jobs.find_submitted(self.plane, marker["body"], marker["at"])
        if found is None:
            return None
        self.ctx.reporter.event("azure", message=f"found job {found['id']} submitted before a crash")
        self.ctx.record_resource(JOB, {"id": found["id"], "status": jobs.normalise(found.get("status")),
                                       "training_file": marker["body"]["training_file"],
                                       "validation_file": marker["body"].get("validation_file"),
                                       "hyperparameters": marker.get("hyperparameters", {}),
                                       "estimated_cost": marker.get("estimated_cost")})
        return found

    def submit(self, body: dict[str, Any], note: dict[str, Any]) -> dict[str, Any]:
        """Create the job exactly once, even if an answer is lost on the way."""
        at = time.time()
        self.ctx.record_resource(SUBMISSION, {"body": body, "at": at, **note})
        try:
            return http.create_once(lambda: jobs.create(self.plane, body),
                                    lambda: jobs.find_submitted(self.plane, body, at), self.settings.retry, self.clock)
        except AzureError as exc:
            if not exc.transient:
                raise StepFailed("train", f"Azure refused the job: {exc}") from None
            raise StepFailed("train", f"could not submit the job: {exc}; ftp run --resume {self.ctx.run_id} "
                             "looks for it before submitting again") from None

    # --- follow ----------------------------------------------------------------------------------

    def follow(self, job_id: str, total_steps: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        rows: list[dict[str, Any]] = []
        task = self.ctx.reporter.progress("azure fine-tuning", total_steps)

        def on_event(event: dict[str, Any]) -> None:
            if event.get("type") == "metrics" and isinstance(event.get("data"), dict):
                row = results.metrics_row(event["data"])
                if row:
                    rows.append(row)
                    self.ctx.log_metrics(row)
                    task.update(min(row["step"], total_steps), **{k: row.get(k) for k in ("train_loss", "eval_loss")})
                return
            message = " ".join(str(event.get("message") or "").split())
            level = event.get("level") or "info"
            log.log(logging.WARNING if level in ("warn", "warning", "error") else logging.INFO, "job %s: %s",
                    job_id, message)
            self.ctx.reporter.event("azure_event", message=f"azure: {message}", level=level)

        def on_status(job: dict[str, Any]) -> None:
            status = jobs.normalise(job.get("status"))
            self.ctx.reporter.event("azure_status", message=f"job {job_id}: {status}", job_id=job_id, status=status)
            self.ctx.record_resource(JOB, {**(self.ctx.resource(JOB) or {}), "id": job_id, "status": status})

        try:
            job = jobs.follow(self.plane, job_id, self.settings.poll, self.clock, on_event, on_status)
        finally:
            task.close()
        return job, rows

    def fetch_results(self, job: dict[str, Any], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """results.csv into the run directory; its steps that no metrics event carried go to metrics.jsonl."""
        result_files = job.get("result_files") or []
        if not result_files:
            return rows
        text = self.plane.raw(f"files/{result_files[0]}/content").decode("utf-8-sig", errors="replace")
        atomic_write(self.ctx.run_dir / "azure" / "results.csv", text)
        merged = {r["step"]: r for r in rows}
        for row in results.parse_results_csv(text):
            if row["step"] not in merged:
                self.ctx.log_metrics(row)
            merged[row["step"]] = {**row, **merged.get(row["step"], {})}
        return [merged[s] for s in sorted(merged)]

    # --- the step --------------------------------------------------------------------------------

    def train(self, request: TrainRequest) -> TrainResult:
        started = time.time()
        hp = job_hyperparameters(request, self.settings)
        job_id = self.existing_job() or self.start_job(request, hp)
        total = max(1, math.ceil(request.train.examples / hp["batch_size"]) * hp["n_epochs"])
        job, rows = self.follow(job_id, total)
        status = jobs.normalise(job.get("status"))
        if status == "failed":
            raise StepFailed("train", f"Azure job {job_id} failed: {jobs.error_line(job)}")
        if status == "cancelled":
            raise StepFailed("train", f"Azure job {job_id} was cancelled; start a new run to train again")
        return self.result(request, job, self.fetch_results(job, rows), hp, started)

    def existing_job(self) -> str | None:
        """The id of the job an earlier attempt of this run submitted: recorded, or found from its marker."""
        job_id = (self.ctx.resource(JOB) or {}).get("id")
        if job_id:
            self.ctx.reporter.event("azure", message=f"reattaching to job {job_id} (submitted earlier in this run)")
            return str(job_id)
        adopted = self.adopt_submitted()
        return str(adopted["id"]) if adopted else None

    def start_job(self, request: TrainRequest, hp: dict[str, Any]) -> str:
        """Cost guard, upload, submit; the job id is in state.json when this returns."""
        est = self.guard_cost(request, hp["n_epochs"])
        training_file, validation_file = self.upload(request)
        seed = self.settings.seed if self.settings.seed is not None else request.settings.seed
        suffix = self.settings.suffix or default_suffix(self.ctx.setting("name") or "ftp")
        body = jobs.create_body(self.settings, request.base_model, training_file, validation_file, hp, seed, suffix)
        job = self.submit(body, {"hyperparameters": hp, "estimated_cost": est.cost})
        self.ctx.record_resource(JOB, {"id": job["id"], "status": jobs.normalise(job.get("status")),
                                       "training_file": training_file, "validation_file": validation_file,
                                       "hyperparameters": hp, "estimated_cost": est.cost})
        self.ctx.reporter.event("azure", message=f"submitted job {job['id']}; ftp runs cancel {self.ctx.run_id} "
                                                  "stops it, ftp run --resume reattaches after a crash")
        return str(job["id"])

    def result(self, request: TrainRequest, job: dict[str, Any], rows: list[dict[str, Any]], hp: dict[str, Any],
               started: float) -> TrainResult:
        model_id = job.get("fine_tuned_model")
        if not model_id:
            raise StepFailed("train", f"Azure job {job['id']} succeeded without a fine_tuned_model; see the job in "
                             "the Azure AI Foundry portal")
        final = results.final_metrics(rows)
        self.ctx.record_resource(JOB_METRICS, final)
        checkpoints = [c.get("fine_tuned_model_checkpoint") or c.get("id") for c in jobs.checkpoints(self.plane, job["id"])]
        recorded = self.ctx.resource(JOB) or {}
        sent = recorded.get("hyperparameters") or hp
        created, finished = job.get("created_at"), job.get("finished_at")
        details = {"job_id": job["id"], "fine_tuned_model": model_id, "training_file": job.get("training_file"),
                   "validation_file": job.get("validation_file"), "result_files": job.get("result_files") or [],
                   "checkpoints": checkpoints, "hyperparameters": sent,
                   "endpoint": self.settings.endpoint, "api_version": self.settings.api_version,
                   "trained_tokens": job.get("trained_tokens"), "estimated_cost": recorded.get("estimated_cost")}
        return TrainResult(
            model=ModelRef(kind="cloud", base=request.base_model, backend="azure", cloud_id=model_id),
            metrics=final, steps=max((r["step"] for r in rows), default=0), epochs=float(sent["n_epochs"]),
            train_tokens=int(job.get("trained_tokens") or 0),
            wall_seconds=float(finished - created) if created and finished else time.time() - started,
            overfitting=results.overfitting(rows), backend_details=details)

    # --- cancel ----------------------------------------------------------------------------------

    def cancel(self) -> str:
        job_id = self.existing_job()  # recorded, or sent before a crash and found by its submission marker
        if job_id is None:
            raise UserError(f"run {self.ctx.run_id} has no Azure job to cancel (none was submitted)")
        job_state = self.ctx.resource(JOB) or {}
        current = jobs.normalise(self.plane.get(f"fine_tuning/jobs/{job_id}").get("status"))
        if current in jobs.TERMINAL:
            return f"job {job_id} is already {current}; nothing to cancel"
        job = jobs.cancel(self.plane, job_id)
        status = jobs.normalise(job.get("status"))
        self.ctx.record_resource(JOB, {**job_state, "id": job_id, "status": status})
        return f"cancel requested for Azure job {job_id} (status: {status})"
