"""Blue-green slots with traffic weights in a SQLite file (``deploy.store``).

A serving process routes requests by weight; promote and roll back are changes of weight. The first
deployment of a name takes all the traffic. Each version's endpoint (what the deployer provisioned)
sits beside the slots, so a client routing by weight knows which URL serves each slot.
"""

from __future__ import annotations

import json
from pathlib import Path

from ftp.run.store import now
from ftp.sqlite_store import connect
from ftp.types import Deployment, DeployRequest, Provisioned

SCHEMA = """
CREATE TABLE IF NOT EXISTS slots (
    name TEXT NOT NULL, slot TEXT NOT NULL, version INTEGER NOT NULL, traffic INTEGER NOT NULL,
    updated_at TEXT NOT NULL, PRIMARY KEY (name, slot)
);
CREATE TABLE IF NOT EXISTS history (
    name TEXT NOT NULL, at TEXT NOT NULL, run_id TEXT, slots TEXT NOT NULL, traffic TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS endpoints (
    name TEXT NOT NULL, version INTEGER NOT NULL, backend TEXT NOT NULL, endpoint TEXT,
    details TEXT NOT NULL, run_id TEXT, created_at TEXT NOT NULL, PRIMARY KEY (name, version)
);
"""
SLOTS = ("blue", "green")
Layout = dict[str, tuple[int, int]]  # slot -> (version, traffic %)


def plan(current: Layout, version: int, strategy: str, traffic_new: int) -> tuple[str, Layout]:
    """(slot for the new version, new {slot: (version, traffic)}) from the current slots."""
    for slot, (v, _) in current.items():
        if v == version:  # already deployed: leave it as it is
            return slot, dict(current)
    if strategy == "replace" or not current:
        return "blue", {"blue": (version, 100)}
    live = max(current, key=lambda s: current[s][1])
    target = next(s for s in SLOTS if s != live)
    return target, {live: (current[live][0], 100 - traffic_new), target: (version, traffic_new)}


def record(request: DeployRequest, provisioned: Provisioned, run_id: str | None) -> Deployment:
    """Put the provisioned version in its slot, re-weight the others, log the change: one transaction,
    so a crash or a concurrent run never leaves slots that disagree with the history or the endpoints."""
    name, version = request.version.name, request.version.version
    with connect(Path(request.store), SCHEMA) as db:
        rows = db.execute("SELECT slot, version, traffic FROM slots WHERE name = ?", (name,)).fetchall()
        slot, slots = plan({r["slot"]: (r["version"], r["traffic"]) for r in rows}, version, request.strategy,
                           request.traffic_new)
        at = now()
        db.execute("DELETE FROM slots WHERE name = ?", (name,))
        db.executemany("INSERT INTO slots VALUES (?, ?, ?, ?, ?)", [(name, s, v, t, at) for s, (v, t) in slots.items()])
        db.execute("INSERT INTO history VALUES (?, ?, ?, ?, ?)",
                   (name, at, run_id, json.dumps({s: v for s, (v, _) in slots.items()}),
                    json.dumps({s: t for s, (_, t) in slots.items()})))
        db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (name, version, provisioned.backend, provisioned.endpoint, json.dumps(provisioned.details),
                    run_id, at))
    return Deployment(name=name, backend=provisioned.backend, slot=slot, version=version,
                      traffic={s: t for s, (_, t) in slots.items()}, slots={s: v for s, (v, _) in slots.items()},
                      endpoint=provisioned.endpoint, created_at=at)


def live_version(store: Path, name: str) -> int | None:
    """The version serving most of ``name``'s traffic (the champion a new version is compared with);
    on equal weights the older version, which has served longest."""
    if not Path(store).exists():
        return None
    with connect(Path(store), SCHEMA) as db:
        row = db.execute("SELECT version FROM slots WHERE name = ? AND traffic > 0 ORDER BY traffic DESC, version ASC "
                         "LIMIT 1", (name,)).fetchone()
    return int(row["version"]) if row else None


def live_versions(store: Path, name: str) -> dict[int, dict[str, int]]:
    """Every version of ``name`` in a slot, with its slots and traffic weights ({version: {slot: %}}):
    a slot at 0% still serves as the blue-green rollback target, so the registry must keep it too."""
    if not Path(store).exists():
        return {}
    with connect(Path(store), SCHEMA) as db:
        rows = db.execute("SELECT slot, version, traffic FROM slots WHERE name = ? ORDER BY slot", (name,)).fetchall()
    held: dict[int, dict[str, int]] = {}
    for row in rows:
        held.setdefault(int(row["version"]), {})[str(row["slot"])] = int(row["traffic"])
    return held
