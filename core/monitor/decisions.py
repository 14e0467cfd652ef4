"""The monitor's audit log: every retraining decision (fired or not, and why) and every automatic
rollback, in the ``decisions`` table of the request log's file, so the cooldown and ``ftp monitor``
read what earlier runs decided."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftp.serve.request_log import read_table, utc_now, writing


def record(log: Path, name: str, kind: str, fired: bool, action: str, details: dict[str, Any]) -> int:
    """Append one decision (``kind``: retrain or rollback; ``action``: what was done, ``none`` if nothing)."""
    from ftp.registry.history import os_user

    with writing(Path(log)) as db:
        cursor = db.execute("INSERT INTO decisions (ts, name, kind, fired, action, user, record) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (utc_now(), name, kind, int(fired), action, os_user(),
                             json.dumps(details, ensure_ascii=False, default=str)))
        return int(cursor.lastrowid or 0)


def read(log: Path, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    """``name``'s decisions, oldest first: ``at``, ``kind``, ``fired``, ``action``, ``user``, ``reasons`` and
    the rest of the record."""
    rows = read_table(Path(log), "decisions", "SELECT * FROM decisions WHERE name = ? ORDER BY id", (name,))
    out = []
    for row in rows:
        if kind is not None and row["kind"] != kind:
            continue
        details = json.loads(row["record"])
        out.append({"at": row["ts"], "kind": row["kind"], "fired": bool(row["fired"]), "action": row["action"],
                    "user": row["user"], "reasons": details.pop("reasons", []), **details})
    return out
