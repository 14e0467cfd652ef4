"""Reading what a summary needs for one deployment: its request-log rows in the period, the feedback
joined to them, the live version's training data as the drift reference, and the rollout comparison.
The server's auto-rollback watcher, ``ftp monitor`` and ``ftp retrain`` all read through here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.config.monitor_settings import AutoRollbackSettings, seconds
from ftp.monitor.feedback import labels, read_feedback
from ftp.monitor.summary import Inputs
from ftp.monitor.windows import Period, now
from ftp.serve.request_log import iso_utc, read_requests


@dataclass
class Sources:
    """Where a deployment's records live, from the pipeline file (or the command's options)."""

    settings: Any  # PipelineSettings
    store: Path  # deploy.store
    log: Path  # the request log
    registry: Any  # a ModelRegistry, or None
    artifacts: Path | None


def rows_of(log: Path, name: str, since: str, until: str | None = None) -> list[dict[str, Any]]:
    return [r for r in read_requests(log, since, until) if r["endpoint"] == name]


def reference_for(sources: Sources, name: str, version: int | None) -> Any:
    from ftp.monitor.reference import build_reference

    if version is None or sources.registry is None:
        return None
    found = sources.registry.get(name, version)
    return build_reference(found, sources.settings.evaluate, sources.artifacts) if found else None


def gather(sources: Sources, name: str, since: str | None = None, window: str | None = None,
           until: Any = None) -> Inputs:
    """The inputs of ``name``'s summary for the period ending ``until`` (default now)."""
    from ftp.deploy.slots import live_version, state_of
    from ftp.monitor.rollout import compare

    m = sources.settings.monitor
    period = Period.ending(until or now(), seconds(since or m.since), seconds(window or m.window))
    requests = rows_of(sources.log, name, iso_utc(period.since), iso_utc(period.until))
    joined = labels(requests, read_feedback(sources.log))
    state = state_of(sources.store, name)
    rollback = sources.settings.deploy.auto_rollback or AutoRollbackSettings()
    rollout = compare(state, requests, joined, rollback)
    reference = reference_for(sources, name, live_version(sources.store, name))
    return Inputs(name=name, period=period, requests=requests, labels=joined, reference=reference, rollout=rollout,
                  settings=m, log=sources.log)
