"""The default model registry: one SQLite file (``register.store``, ``.ftp/registry.db``).

Versions number from 1 per model name. Registering is idempotent per run, so a run resumed after
a crash inside this step never creates a second version. Aliases follow MLflow (one version per
alias, setting one moves it, ``latest`` and ``v<N>`` reserved) and every change appends to the
``audit`` table: who (the OS user), when, what, why.

Safe under concurrency: the file is in WAL journal mode (readers never block the writer), every
connection waits up to 30 s for a lock (``ftp.sqlite_store.connect``'s busy timeout), and every change
is one ``BEGIN IMMEDIATE`` transaction that reads, decides and writes, so processes registering the
same name at once get distinct consecutive versions and racing alias moves each log the holder they
replaced. WAL needs a local file system (not NFS or SMB), as SQLite documents.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from sqlite3 import Connection, Row
from typing import Any

from ftp import hookimpl
from ftp.errors import UserError
from ftp.registry.history import os_user, split_rollback
from ftp.registry.refs import check_alias, is_reserved, reserved_version
from ftp.run.store import now
from ftp.sqlite_store import connect, ensure_wal
from ftp.types import AuditEntry, ModelVersion

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL, version INTEGER NOT NULL, created_at TEXT NOT NULL, run_id TEXT NOT NULL,
    backend TEXT NOT NULL, base_model TEXT NOT NULL, artifact TEXT NOT NULL, data_sha256 TEXT NOT NULL,
    hyperparameters TEXT NOT NULL, metrics TEXT NOT NULL, pipeline_sha256 TEXT NOT NULL,
    code_version TEXT NOT NULL, backend_details TEXT NOT NULL DEFAULT '{}', model TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '{}', stored TEXT NOT NULL DEFAULT '{}', lineage TEXT NOT NULL DEFAULT '{}',
    archived INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS aliases (
    name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, at TEXT NOT NULL, user TEXT NOT NULL,
    action TEXT NOT NULL, version INTEGER, alias TEXT, previous INTEGER, reason TEXT NOT NULL DEFAULT '',
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_by_name ON audit (name, id);
"""
JSON_FIELDS = ("data_sha256", "hyperparameters", "metrics", "backend_details", "model", "tags", "stored", "lineage")
ADDED = {"backend_details": "TEXT NOT NULL DEFAULT '{}'", "model": "TEXT NOT NULL DEFAULT ''",
         "tags": "TEXT NOT NULL DEFAULT '{}'", "stored": "TEXT NOT NULL DEFAULT '{}'",
         "lineage": "TEXT NOT NULL DEFAULT '{}'", "archived": "INTEGER NOT NULL DEFAULT 0"}


def _migrate(db: Connection) -> None:
    """Registries written before a column existed gain it, empty for their versions (``ModelVersion``
    rebuilds the model reference from ``artifact``; no tags, nothing in the artifact store)."""
    columns = {row["name"] for row in db.execute("PRAGMA table_info(versions)")}
    for column, kind in ADDED.items():
        if column not in columns:
            db.execute(f"ALTER TABLE versions ADD COLUMN {column} {kind}")


def _row(row: Row, aliases: builtins.list[str] | None = None) -> ModelVersion:
    data = dict(row)
    for key in JSON_FIELDS:
        data[key] = json.loads(data[key]) if data[key] else None
    data["archived"] = bool(data.get("archived"))
    return ModelVersion.model_validate({**data, "aliases": sorted(aliases or [])})


_IN_WAL: set[str] = set()  # files this process has already seen in WAL mode


def _ensure_wal(path: Path, patience: float = 30.0) -> None:
    """Switch the file to WAL journal mode (persistent: once per file, checked once per process).
    SQLite does not call the busy handler for a journal-mode change, so processes creating the file at
    the same moment can get "database is locked" here at once: retry for ``patience`` seconds instead."""
    key = str(path.resolve())
    if key in _IN_WAL:
        return
    ensure_wal(path, "the registry", patience)
    _IN_WAL.add(key)


def _audit(db: Connection, name: str, action: str, version: int | None = None, alias: str | None = None,
           previous: int | None = None, reason: str = "", details: dict[str, Any] | None = None) -> None:
    db.execute("INSERT INTO audit (name, at, user, action, version, alias, previous, reason, details) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (name, now(), os_user(), action, version, alias, previous, reason,
                json.dumps(details or {}, sort_keys=True, default=str)))


class SqliteRegistry:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    @contextmanager
    def _db(self) -> Iterator[Connection]:
        """One IMMEDIATE transaction on the registry file, its tables up to date."""
        _ensure_wal(self.path)
        with connect(self.path, SCHEMA) as db:
            _migrate(db)
            yield db

    @staticmethod
    def _held(db: Connection, name: str) -> dict[int, builtins.list[str]]:
        held: dict[int, builtins.list[str]] = {}
        for row in db.execute("SELECT alias, version FROM aliases WHERE name = ?", (name,)):
            held.setdefault(int(row["version"]), []).append(str(row["alias"]))
        return held

    def _version(self, db: Connection, name: str, version: int) -> ModelVersion:
        row = db.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            known = ", ".join(str(r[0]) for r in db.execute("SELECT version FROM versions WHERE name = ? "
                                                            "ORDER BY version", (name,))) or "none"
            raise UserError(f"no version {name} v{version} in {self.location} (versions: {known}); "
                            "ftp models list shows them")
        return _row(row, self._held(db, name).get(version))

    def register(self, version: ModelVersion) -> ModelVersion:
        with self._db() as db:
            existing = db.execute("SELECT version FROM versions WHERE name = ? AND run_id = ?",
                                  (version.name, version.run_id)).fetchone()
            if existing is not None:
                return self._version(db, version.name, int(existing[0]))
            number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?",
                                (version.name,)).fetchone()[0]
            stored = version.model_copy(update={"version": number, "aliases": []})
            data = {**stored.model_dump(mode="json", exclude={"aliases"}), "artifact": stored.artifact}  # artifact: for older readers
            for key in JSON_FIELDS:
                data[key] = json.dumps(data[key], sort_keys=True)
            db.execute(f"INSERT INTO versions ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
                       list(data.values()))
            _audit(db, version.name, "register", number,
                   details={"run_id": version.run_id, "backend": version.backend, "base_model": version.base_model})
        return stored

    def list(self, name: str | None = None) -> builtins.list[ModelVersion]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT * FROM versions WHERE (? IS NULL OR name = ?) ORDER BY name, version",
                              (name, name)).fetchall()
            held = {n: self._held(db, n) for n in {r["name"] for r in rows}}
        return [_row(r, held[r["name"]].get(r["version"])) for r in rows]

    def get(self, name: str, version: int | None = None) -> ModelVersion | None:
        if not self.path.exists():
            return None
        with self._db() as db:
            number = version if version is not None else db.execute(
                "SELECT MAX(version) FROM versions WHERE name = ?", (name,)).fetchone()[0]
            row = db.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, number)).fetchone()
            return _row(row, self._held(db, name).get(int(number))) if row is not None else None

    def set_tag(self, name: str, version: int, key: str, value: Any) -> ModelVersion:
        """Read-modify-write of one version's tags inside one write transaction, so two imports at once
        never lose each other's tag. A ``value`` of None deletes the key."""
        if not self.path.exists():
            raise UserError(f"{self.path}: no registry here, so no version {name} v{version} to tag")
        with self._db() as db:
            tags = dict(self._version(db, name, version).tags)
            if value is None and key not in tags:
                return self._version(db, name, version)
            if value is None:
                del tags[key]
            else:
                tags[key] = value
            db.execute("UPDATE versions SET tags = ? WHERE name = ? AND version = ?",
                       (json.dumps(tags, sort_keys=True, default=str), name, version))
            _audit(db, name, "tag", version, details={"key": key, "value": value, "deleted": value is None})
            return self._version(db, name, version)

    def alias(self, name: str, alias: str) -> int | None:
        """The version ``alias`` points at; ``latest`` resolves to the highest version and ``v3`` to 3
        when it exists (MLflow reserves both names; here they can be read, never set)."""
        if not self.path.exists():
            return None
        with self._db() as db:
            if is_reserved(alias):
                wanted = reserved_version(alias)
                row = db.execute("SELECT MAX(version) FROM versions WHERE name = ? AND (? IS NULL OR version = ?)",
                                 (name, wanted, wanted)).fetchone()
            else:
                row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        return int(row[0]) if row is not None and row[0] is not None else None

    def aliases(self, name: str) -> dict[str, int]:
        if not self.path.exists():
            return {}
        with self._db() as db:
            rows = db.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)).fetchall()
        return {str(r["alias"]): int(r["version"]) for r in rows}

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> int | None:
        """Point ``alias`` at ``version`` and log the move with the holder it replaced; setting the alias
        it already has changes nothing and logs nothing. A reason marked by ``rollback_reason`` is
        logged as action ``rollback``."""
        check_alias(alias)
        rolled_back, why = split_rollback(reason)
        with self._db() as db:
            target = self._version(db, name, version)
            if target.archived:
                raise UserError(f"{name}:{version} is archived; restore it first (ftp models archive "
                                f"{name}:{version} --undo)")
            row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            previous = int(row[0]) if row is not None else None
            if previous == version:
                return previous
            db.execute("INSERT OR REPLACE INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)",
                       (name, alias, version, now()))
            _audit(db, name, "rollback" if rolled_back else "alias", version, alias, previous, why)
        return previous

    def delete_alias(self, name: str, alias: str, reason: str = "") -> None:
        with self._db() as db:
            row = db.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            if row is None:
                raise UserError(f"{name}@{alias}: no such alias in {self.location}; ftp models show {name} "
                                "lists the aliases")
            db.execute("DELETE FROM aliases WHERE name = ? AND alias = ?", (name, alias))
            _audit(db, name, "unalias", None, alias, int(row[0]), reason)

    def archive(self, name: str, version: int, archived: bool = True, reason: str = "") -> ModelVersion:
        """Mark a version as not to be used (or restore it). The checks against deployment slots and
        aliases are ``ftp.registry.history.archive``'s, shared by every registry kind."""
        with self._db() as db:
            current = self._version(db, name, version)
            if current.archived == archived:
                return current
            db.execute("UPDATE versions SET archived = ? WHERE name = ? AND version = ?", (int(archived), name, version))
            _audit(db, name, "archive" if archived else "unarchive", version, reason=reason)
            return self._version(db, name, version)

    def history(self, name: str) -> builtins.list[AuditEntry]:
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT * FROM audit WHERE name = ? ORDER BY id", (name,)).fetchall()
        return [AuditEntry.model_validate({**{k: r[k] for k in r.keys() if k != "id"},
                                           "details": json.loads(r["details"] or "{}")}) for r in rows]


@hookimpl
def ftp_model_registry(kind: str, location: Path) -> SqliteRegistry | None:
    return SqliteRegistry(location) if kind == "sqlite" else None
