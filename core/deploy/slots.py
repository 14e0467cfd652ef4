"""Blue-green slots with traffic weights in a SQLite file (``deploy.store``).

A serving process routes requests by weight; promote and roll back are changes of weight. The first
deployment of a name takes all the traffic. Each version's endpoint (what the deployer provisioned)
sits beside the slots, so a client routing by weight knows which URL serves each slot. A mirrored slot
(``mirror``) gets a copy of a share of the live slot's requests, answers logged only. Every change is a
``history`` row: who, when, why, the state before and after, and the alias it moved; ``ftp.deploy.traffic``
makes the changes, this module owns the tables.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS mirror (
    name TEXT PRIMARY KEY, slot TEXT NOT NULL, percent INTEGER NOT NULL, updated_at TEXT NOT NULL
);
"""
# columns added to ``history`` after its first release; files made before get them on first open
ADDED = {"action": "TEXT", "user": "TEXT", "reason": "TEXT", "mirror": "TEXT", "before": "TEXT", "alias": "TEXT"}
SLOTS = ("blue", "green")
Layout = dict[str, tuple[int, int]]  # slot -> (version, traffic %)


@dataclass(frozen=True)
class State:
    """A deployment's slots and its mirror ({slot: %}, at most one): what one change replaces."""

    slots: Layout = field(default_factory=dict)
    mirror: dict[str, int] = field(default_factory=dict)

    def versions(self) -> dict[str, int]:
        return {s: v for s, (v, _) in sorted(self.slots.items())}

    def traffic(self) -> dict[str, int]:
        return {s: t for s, (_, t) in sorted(self.slots.items())}

    def mirrored(self) -> tuple[str, int, int] | None:
        """(slot, version, percent) of the mirrored slot, or None."""
        for slot, percent in self.mirror.items():
            if slot in self.slots and percent > 0:
                return slot, self.slots[slot][0], percent
        return None

    def as_json(self) -> dict[str, Any]:
        return {"slots": self.versions(), "traffic": self.traffic(), "mirror": dict(self.mirror)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        traffic = data.get("traffic") or {}
        return cls({s: (int(v), int(traffic.get(s, 0))) for s, v in (data.get("slots") or {}).items()},
                   {s: int(p) for s, p in (data.get("mirror") or {}).items()})


@contextmanager
def opened(store: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction on ``store`` with the current schema (older files gain the new columns)."""
    with connect(Path(store), SCHEMA) as db:
        have = {row["name"] for row in db.execute("PRAGMA table_info(history)")}
        for column, kind in ADDED.items():
            if column not in have:
                db.execute(f"ALTER TABLE history ADD COLUMN {column} {kind}")
        yield db


def read_state(db: sqlite3.Connection, name: str) -> State:
    rows = db.execute("SELECT slot, version, traffic FROM slots WHERE name = ?", (name,)).fetchall()
    mirror = db.execute("SELECT slot, percent FROM mirror WHERE name = ?", (name,)).fetchone()
    return State({r["slot"]: (int(r["version"]), int(r["traffic"])) for r in rows},
                 {mirror["slot"]: int(mirror["percent"])} if mirror else {})


def write_state(db: sqlite3.Connection, name: str, before: State, after: State, *, action: str, user: str,
                reason: str = "", run_id: str | None = None, alias: dict[str, Any] | None = None) -> int:
    """Replace ``name``'s slots and mirror with ``after`` and log the change; the history row's id."""
    at = now()
    db.execute("DELETE FROM slots WHERE name = ?", (name,))
    db.executemany("INSERT INTO slots VALUES (?, ?, ?, ?, ?)", [(name, s, v, t, at) for s, (v, t) in after.slots.items()])
    db.execute("DELETE FROM mirror WHERE name = ?", (name,))
    db.executemany("INSERT INTO mirror VALUES (?, ?, ?, ?)", [(name, s, p, at) for s, p in after.mirror.items()])
    cursor = db.execute(
        "INSERT INTO history (name, at, run_id, slots, traffic, action, user, reason, mirror, before, alias) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (name, at, run_id, json.dumps(after.versions()), json.dumps(after.traffic()), action, user, reason,
         json.dumps(after.mirror), json.dumps(before.as_json()), json.dumps(alias) if alias else None))
    return int(cursor.lastrowid or 0)


def save_endpoint(db: sqlite3.Connection, name: str, version: int, provisioned: Provisioned, run_id: str | None) -> None:
    db.execute("INSERT OR REPLACE INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
               (name, version, provisioned.backend, provisioned.endpoint, json.dumps(provisioned.details), run_id, now()))


def read_endpoints(db: sqlite3.Connection, name: str) -> dict[int, Provisioned]:
    rows = db.execute("SELECT * FROM endpoints WHERE name = ?", (name,)).fetchall()
    return {int(r["version"]): Provisioned(backend=r["backend"], endpoint=r["endpoint"], details=json.loads(r["details"]))
            for r in rows}


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
    so a crash or a concurrent run never leaves slots that disagree with the history or the endpoints.
    (The deploy step goes through ``ftp.deploy.traffic.deploy``, which adds the smoke-tested mirror,
    the deployer's own traffic split and the alias.)"""
    name, version = request.version.name, request.version.version
    with opened(Path(request.store)) as db:
        before = read_state(db, name)
        slot, layout = plan(before.slots, version, request.strategy, request.traffic_new)
        after = State(layout, kept_mirror(before, layout))
        write_state(db, name, before, after, action="deploy", user="", run_id=run_id,
                    reason=f"run {run_id}" if run_id else "")
        save_endpoint(db, name, version, provisioned, run_id)
    return deployment(name, provisioned, slot, version, after)


def kept_mirror(before: State, layout: Layout) -> dict[str, int]:
    """The mirror that survives a new layout: its slot still holds the same version, at 0% traffic."""
    return {s: p for s, p in before.mirror.items()
            if s in layout and layout[s] == (before.slots.get(s, (0, 0))[0], 0)}


def deployment(name: str, provisioned: Provisioned, slot: str, version: int, state: State) -> Deployment:
    return Deployment(name=name, backend=provisioned.backend, slot=slot, version=version, traffic=state.traffic(),
                      slots=state.versions(), endpoint=provisioned.endpoint, created_at=now())


@contextmanager
def reading(store: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection: ``ftp serve`` reads the slots on every request, and a write transaction
    (``opened``) for each would queue every server behind every other and behind ``ftp deploy``."""
    conn = sqlite3.connect(f"{Path(store).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def read_store(store: Path, reader: Any, empty: Any) -> Any:
    """``reader(db)`` on an existing store; ``empty`` when there is no file yet (nothing deployed). A
    file of the first schema (no ``mirror`` table yet) is migrated once, in a write transaction."""
    if not Path(store).exists():
        return empty
    try:
        with reading(Path(store)) as db:
            return reader(db)
    except sqlite3.OperationalError:
        with opened(Path(store)) as db:
            return reader(db)


def names_in(db: sqlite3.Connection) -> list[str]:
    return sorted({r["name"] for r in db.execute("SELECT name FROM history")})


def names(store: Path) -> list[str]:
    """Every deployment name in ``store``."""
    return read_store(store, names_in, [])


def state_of(store: Path, name: str) -> State:
    return read_store(store, lambda db: read_state(db, name), State())


def live_version(store: Path, name: str) -> int | None:
    """The version serving most of ``name``'s traffic (the champion a new version is compared with);
    on equal weights the older version, which has served longest."""
    live = sorted(((-t, v) for v, t in state_of(store, name).slots.values() if t > 0))
    return live[0][1] if live else None


def live_versions(store: Path, name: str) -> dict[int, dict[str, int]]:
    """Every version of ``name`` in a slot, with its slots and traffic weights ({version: {slot: %}}):
    a slot at 0% still serves as the blue-green rollback target, so the registry must keep it too."""
    held: dict[int, dict[str, int]] = {}
    for slot, (version, traffic) in sorted(state_of(store, name).slots.items()):
        held.setdefault(version, {})[slot] = traffic
    return held


def mirror_of(store: Path, name: str) -> tuple[str, int, int] | None:
    """(slot, version, percent) of ``name``'s mirrored slot: that share of the live slot's requests is
    also sent to it, its answers logged and discarded; None when nothing is mirrored."""
    return state_of(store, name).mirrored()


def endpoint_of(store: Path, name: str, version: int) -> Provisioned | None:
    """What the deployer provisioned for ``name`` ``version`` (its backend, URL, details), if recorded."""
    return read_store(store, lambda db: read_endpoints(db, name), {}).get(version)
