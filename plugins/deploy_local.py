"""Local deployment records: blue-green slots with traffic weights in a SQLite file.

A serving process (a later issue) reads the slots and routes requests by weight; promote and
roll back are changes of weight. The first deployment of a name takes all the traffic.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftp import hookimpl
from ftp.run.store import now
from ftp.sqlite_store import connect
from ftp.types import Deployment, DeployRequest, StepContext

SCHEMA = """
CREATE TABLE IF NOT EXISTS slots (
    name TEXT NOT NULL, slot TEXT NOT NULL, version INTEGER NOT NULL, traffic INTEGER NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (name, slot)
);
CREATE TABLE IF NOT EXISTS history (
    name TEXT NOT NULL, at TEXT NOT NULL, run_id TEXT, slots TEXT NOT NULL, traffic TEXT NOT NULL
);
"""
SLOTS = ("blue", "green")


def plan(current: dict[str, tuple[int, int]], version: int, strategy: str, traffic_new: int) -> tuple[str, dict[str, tuple[int, int]]]:
    """(slot for the new version, new {slot: (version, traffic)}) from the current slots."""
    for slot, (v, _) in current.items():
        if v == version:  # already deployed: leave it as it is
            return slot, dict(current)
    if strategy == "replace" or not current:
        return "blue", {"blue": (version, 100)}
    live = max(current, key=lambda s: current[s][1])
    target = next(s for s in SLOTS if s != live)
    return target, {live: (current[live][0], 100 - traffic_new), target: (version, traffic_new)}


class LocalDeployer:
    name = "local-records"

    def deploy(self, request: DeployRequest, ctx: StepContext) -> Deployment:
        name = request.version.name
        with connect(Path(request.store), SCHEMA) as db:
            rows = db.execute("SELECT slot, version, traffic FROM slots WHERE name = ?", (name,)).fetchall()
            current = {r["slot"]: (r["version"], r["traffic"]) for r in rows}
            slot, slots = plan(current, request.version.version, request.strategy, request.traffic_new)
            at = now()
            db.execute("DELETE FROM slots WHERE name = ?", (name,))
            for s, (v, t) in slots.items():
                db.execute("INSERT INTO slots VALUES (?, ?, ?, ?, ?)", (name, s, v, t, at))
            db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?)",
                       (name, at, ctx.run_id, json.dumps({s: v for s, (v, _) in slots.items()}),
                        json.dumps({s: t for s, (_, t) in slots.items()})))
        return Deployment(name=name, backend="local", slot=slot, version=request.version.version,
                          traffic={s: t for s, (_, t) in slots.items()}, slots={s: v for s, (v, _) in slots.items()},
                          endpoint=None, created_at=at)


@hookimpl
def ftp_deployer(backend: str) -> LocalDeployer | None:
    return LocalDeployer() if backend == "local" else None
