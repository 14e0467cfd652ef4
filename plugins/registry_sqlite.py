"""The default model registry: one SQLite file (``register.store``, ``.ftp/registry.db``).

Versions number from 1 per model name. Registering is idempotent per run, so a run resumed after
a crash inside this step never creates a second version.
"""

from __future__ import annotations

import json
from pathlib import Path
from sqlite3 import Connection, Row
from typing import Any

from ftp import hookimpl
from ftp.errors import UserError
from ftp.sqlite_store import connect
from ftp.types import ModelVersion

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


def _row(row: Row) -> ModelVersion:
    data = dict(row)
    for key in JSON_FIELDS:
        data[key] = json.loads(data[key]) if data[key] else None
    return ModelVersion.model_validate(data)


class SqliteRegistry:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = str(path)

    def register(self, version: ModelVersion) -> ModelVersion:
        with connect(self.path, SCHEMA) as db:
            _migrate(db)
            existing = db.execute("SELECT * FROM versions WHERE name = ? AND run_id = ?",
                                  (version.name, version.run_id)).fetchone()
            if existing is not None:
                return _row(existing)
            number = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?",
                                (version.name,)).fetchone()[0]
            stored = version.model_copy(update={"version": number})
            data = {**stored.model_dump(mode="json", exclude={"aliases"}), "artifact": stored.artifact}  # artifact: for older readers
            for key in JSON_FIELDS:
                data[key] = json.dumps(data[key], sort_keys=True)
            db.execute(f"INSERT INTO versions ({', '.join(data)}) VALUES ({', '.join('?' * len(data))})",
                       list(data.values()))
        return stored

    def list(self, name: str | None = None) -> list[ModelVersion]:
        if not self.path.exists():
            return []
        with connect(self.path, SCHEMA) as db:
            _migrate(db)
            rows = db.execute("SELECT * FROM versions WHERE (? IS NULL OR name = ?) ORDER BY name, version",
                              (name, name)).fetchall()
        return [_row(r) for r in rows]

    def get(self, name: str, version: int | None = None) -> ModelVersion | None:
        versions = self.list(name)
        if version is None:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version == version), None)

    def set_tag(self, name: str, version: int, key: str, value: Any) -> ModelVersion:
        """Read-modify-write of one version's tags inside one write transaction, so two imports at once
        never lose each other's tag."""
        if not self.path.exists():
            raise UserError(f"{self.path}: no registry here, so no version {name} v{version} to tag")
        with connect(self.path, SCHEMA) as db:
            _migrate(db)
            row = db.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
            if row is None:
                raise UserError(f"no version {name} v{version} in {self.location}; `ftp models list` shows them")
            tags = {**_row(row).tags, key: value}
            db.execute("UPDATE versions SET tags = ? WHERE name = ? AND version = ?",
                       (json.dumps(tags, sort_keys=True, default=str), name, version))
            stored = _row(db.execute("SELECT * FROM versions WHERE name = ? AND version = ?",
                                     (name, version)).fetchone())
        return stored


@hookimpl
def ftp_model_registry(kind: str, location: Path) -> SqliteRegistry | None:
    return SqliteRegistry(location) if kind == "sqlite" else None
