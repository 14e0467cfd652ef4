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
