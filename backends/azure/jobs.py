"""Fine-tuning jobs: the create body, status names, following a job, its events, cancel.

Azure's spec and OpenAI's client name statuses differently (``pending`` vs ``queued``/
``validating_files``; previews add ``pausing``/``paused``/``resuming``); everything here speaks the
normalised names: queued, running, paused, succeeded, failed, cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from .dataplane import DataPlane
from .http import AzureError, Clock
from .settings import AzureSettings, PollSettings

NORMAL = {"created": "queued", "pending": "queued", "validating_files": "queued", "queued": "queued",
          "running": "running", "pausing": "running", "resuming": "running", "paused": "paused",
          "succeeded": "succeeded", "failed": "failed", "cancelled": "cancelled", "canceled": "cancelled"}
TERMINAL = ("succeeded", "failed", "cancelled")


def normalise(status: str | None) -> str:
    """The normalised name of a raw status; an unknown one passes through (Azure adds values)."""
    raw = (status or "").lower()
    return NORMAL.get(raw, raw or "unknown")


def create_body(settings: AzureSettings, model: str, training_file: str, validation_file: str | None,
                hyperparameters: dict[str, Any], seed: int | None, suffix: str) -> dict[str, Any]:
    """GA puts hyperparameters at the top; preview and v1 nest them under ``method.supervised``."""
    body: dict[str, Any] = {"model": model, "training_file": training_file, "suffix": suffix}
    if validation_file:
        body["validation_file"] = validation_file
    if seed is not None:
        body["seed"] = seed
    if settings.uses_method_body():
        body["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}
    else:
        body["hyperparameters"] = hyperparameters
    return body


def create(plane: DataPlane, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /fine_tuning/jobs``, sent once: a 5xx or reset might hide a job that exists (see ``find_submitted``)."""
    return plane.post("fine_tuning/jobs", body, retry_ambiguous=False)


def find_submitted(plane: DataPlane, body: dict[str, Any], since: float) -> dict[str, Any] | None:
    """A job this run already created: same model and files, created at or after ``since`` (epoch seconds).

    Used when a submission's answer was lost (crash, reset, 5xx): the job may exist all the same, and
    submitting again would pay twice.
    """
    after: str | None = None
    for _ in range(20):  # 20 pages of 100: far more jobs than one resource keeps near `since`
        page = plane.get("fine_tuning/jobs", limit=100, after=after)
        for job in page.get("data", []):
            if (job.get("model") == body["model"] and job.get("training_file") == body["training_file"]
                    and job.get("validation_file") == body.get("validation_file")
                    and (job.get("suffix") in (None, body["suffix"]))
                    and float(job.get("created_at") or 0) >= since - 120):
                return job
        if not page.get("has_more") or not page.get("data"):
            return None
        after = page["data"][-1]["id"]
    return None


def cancel(plane: DataPlane, job_id: str) -> dict[str, Any]:
    return plane.post(f"fine_tuning/jobs/{job_id}/cancel")


@dataclass
class EventCursor:
    """Which events were already shown, so each one is streamed once however often it is listed."""

    seen: set[str] = field(default_factory=set)

    def new(self, plane: DataPlane, job_id: str) -> list[dict[str, Any]]:
        """Events not seen yet, oldest first (the list may come newest first)."""
        fresh: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(50):
            page = plane.get(f"fine_tuning/jobs/{job_id}/events", limit=100, after=after)
            data = page.get("data", [])
            unseen = [e for e in data if e.get("id") not in self.seen]
            fresh += unseen
            if not page.get("has_more") or not data or not unseen:
                break
            after = data[-1]["id"]
        for event in fresh:
            self.seen.add(event.get("id", ""))
        return chronological(fresh)


def chronological(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Oldest first. OpenAI lists newest first, Azure's examples oldest first; where every timestamp is
    equal the order cannot be told, and the documented newest-first is assumed. Metrics go by step."""
    pairs = list(pairwise(e.get("created_at") or 0 for e in events))
    ascending = any(a < b for a, b in pairs) and not any(a > b for a, b in pairs)
    ordered = events if ascending else list(reversed(events))
    position = {id(e): i for i, e in enumerate(ordered)}

    def key(e: dict[str, Any]) -> tuple[float, int]:
        return (e.get("created_at") or 0, position[id(e)])

    return sorted(ordered, key=key)


def checkpoints(plane: DataPlane, job_id: str) -> list[dict[str, Any]]:
    """The deployable checkpoints (the last three epochs), oldest first; empty where unsupported."""
    try:
        page = plane.get(f"fine_tuning/jobs/{job_id}/checkpoints", limit=10)
    except AzureError as exc:
        if exc.status == 404:
            return []
        raise
    return sorted(page.get("data", []), key=lambda c: c.get("step_number") or 0)


def follow(plane: DataPlane, job_id: str, poll: PollSettings, clock: Clock,
           on_event: Callable[[dict[str, Any]], None], on_status: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Poll the job to a terminal status; each new event and each status change is handed on at once.

    The wait grows by ``poll.backoff`` while nothing happens and drops back when something does. A
    transient failure inside one poll is retried by the HTTP layer; the job is not touched.
    """
    cursor = EventCursor()
    wait, start, last = poll.interval, clock.now(), ""
    while True:
        job = plane.get(f"fine_tuning/jobs/{job_id}")
        events = cursor.new(plane, job_id)
        for event in events:
            on_event(event)
        status = normalise(job.get("status"))
        if status != last:
            on_status(job)
        if status in TERMINAL:
            return job
        if clock.now() - start > poll.timeout:
            raise AzureError(f"job {job_id} is still {status} after {poll.timeout:.0f}s of following; it keeps "
                             "running on Azure: ftp run --resume picks it up, ftp runs cancel stops it")
        changed = bool(events) or status != last
        last = status
        wait = poll.interval if changed else min(poll.max_interval, wait * poll.backoff)
        clock.sleep(wait)


def error_line(job: dict[str, Any]) -> str:
    """A failed job's ``error {code, message, param}`` as one line."""
    err = job.get("error") or {}
    if not isinstance(err, dict) or not err:
        return "no reason given"
    message = " ".join(str(err.get("message") or "").split())
    param = f" ({err['param']})" if err.get("param") else ""
    return f"{err.get('code') or 'error'}{param}: {message or 'no message'}"
