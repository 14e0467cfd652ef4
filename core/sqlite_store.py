"""A small helper for the SQLite files that built-in plugins keep (registry, deployments)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftp.errors import FtpError


@contextmanager
def connect(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """One write transaction (BEGIN IMMEDIATE): two runs finishing at once never clash on a number."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise FtpError(f"{path}: cannot open database: {exc}") from None
    conn.row_factory = sqlite3.Row
    try:
        conn.executescript(schema)
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def ensure_wal(path: Path, what: str, patience: float = 30.0) -> None:
    """Switch ``path`` to WAL journal mode (persistent in the file), so readers never block writers.
    SQLite does not call the busy handler for a journal-mode change, so processes creating the file at
    the same moment can get "database is locked" at once: retry for ``patience`` seconds instead.
    ``what`` names the file in the error (the registry, the request log)."""
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + patience
    conn = sqlite3.connect(path, timeout=patience, isolation_level=None)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL").fetchone()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise FtpError(f"{path}: cannot switch {what} to WAL mode: {exc}") from None
                time.sleep(0.01)
    finally:
        conn.close()
