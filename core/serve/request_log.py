"""The request log: one SQLite row per request ``ftp serve`` answered (or refused), for ``ftp monitor``.

Writing never blocks the event loop: ``append`` puts the row on a bounded queue and returns; one writer
thread takes rows off in batches and inserts each batch in one transaction. A full queue (the disk far
behind the traffic) drops rows and counts them rather than slow the answers down.

The file is in WAL mode, so readers (``ftp monitor``) never block the writers, and several server
processes may append to one file (each write is a short ``BEGIN IMMEDIATE`` with a busy timeout).
Growth is bounded: at start and every ``prune_every`` rows a writer deletes rows older than
``retention_days`` and, beyond ``max_rows``, the oldest. Prompt and answer texts are kept only with
``log_content``; otherwise they are dropped before the row reaches the queue (hashes and lengths stay).
The ``schema_version`` table records the migrations applied, so later columns arrive as a new entry in
``MIGRATIONS``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from ftp.errors import FtpError, UserError
from ftp.sqlite_store import connect

log = logging.getLogger(__name__)

# One list of statements per schema version, applied in order inside one transaction.
MIGRATIONS: dict[int, list[str]] = {
    1: ["""CREATE TABLE requests (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL, request_id TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT, slot TEXT,
            model_version INTEGER, routing_reason TEXT, mirrored INTEGER NOT NULL DEFAULT 0,
            status INTEGER NOT NULL, error_type TEXT, latency_ms REAL NOT NULL, ttft_ms REAL, queue_ms REAL,
            prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, prompt_sha256 TEXT,
            prompt_chars INTEGER, output_chars INTEGER, prompt_text TEXT, output_text TEXT)""",
        "CREATE INDEX requests_ts ON requests (ts)",
        "CREATE INDEX requests_request_id ON requests (request_id)"],
    # what ftp monitor compares with the training data without keeping any text (ftp.monitor.features),
    # the feedback that labels answers, and the monitor's decisions (its audit log)
    2: [*(f"ALTER TABLE requests ADD COLUMN {column}" for column in (
            "prompt_turns INTEGER", "prompt_words INTEGER", "prompt_nonletter REAL", "prompt_nonascii REAL",
            "output_sha256 TEXT", "answer_in_format INTEGER", "answer_label TEXT")),
        """CREATE TABLE feedback (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, request_id TEXT, model TEXT, name TEXT NOT NULL,
            value TEXT NOT NULL, rationale TEXT, source_type TEXT NOT NULL, source_id TEXT, messages TEXT)""",
        "CREATE INDEX feedback_request_id ON feedback (request_id)",
        """CREATE TABLE decisions (
            id INTEGER PRIMARY KEY, ts TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
            fired INTEGER NOT NULL, action TEXT NOT NULL, user TEXT, record TEXT NOT NULL)""",
        "CREATE INDEX decisions_by_name ON decisions (name, id)"],
}
LATEST = max(MIGRATIONS)
VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);"
QUEUE_SIZE = 100_000  # rows waiting for the disk before new ones are dropped (~100 MB at most with texts)
BATCH = 1000  # rows per transaction at most
CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")  # what utc_now writes


def utc_now() -> str:
    """Now as the log writes time stamps: ISO 8601, UTC, milliseconds, one width (so text order is time order)."""
    return iso_utc(datetime.now(timezone.utc))


def iso_utc(moment: datetime) -> str:
    naive = moment if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return naive.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds")


def normalise_ts(text: str) -> str:
    """Any ISO time (``Z`` or an offset; none means UTC) in the log's one form, so comparing text compares time."""
    try:
        return iso_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise UserError(f"{text!r} is not an ISO time; write e.g. 2026-11-30T12:00:00Z") from None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RequestRecord:
    """One request as logged. ``model``: the name the client asked for; ``endpoint``: the deployment it
    resolved to; ``mirrored``: a shadow answer (logged, never returned); times in milliseconds."""

    request_id: str
    model: str
    status: int
    latency_ms: float
    ts: str = dataclasses.field(default_factory=utc_now)  # default: when the record is made; give the arrival time
    endpoint: str | None = None
    slot: str | None = None
    model_version: int | None = None
    routing_reason: str | None = None  # hash, random or pinned
    mirrored: bool = False
    error_type: str | None = None
    ttft_ms: float | None = None
    queue_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    prompt_sha256: str | None = None
    prompt_chars: int | None = None
    output_chars: int | None = None
    prompt_text: str | None = None
    output_text: str | None = None
    # schema 2: the prompt's shape and the answer's format, computed by the server (ftp.monitor.features)
    prompt_turns: int | None = None
    prompt_words: int | None = None
    prompt_nonletter: float | None = None
    prompt_nonascii: float | None = None
    output_sha256: str | None = None  # of the answer as exact match normalises it: feedback's "expected" meets it
    answer_in_format: bool | None = None
    answer_label: str | None = None  # label tasks: the answer when in the label set, else "__invalid__"


COLUMNS = tuple(f.name for f in dataclasses.fields(RequestRecord))
MIRRORED, IN_FORMAT = COLUMNS.index("mirrored"), COLUMNS.index("answer_in_format")
TEXTS = (COLUMNS.index("prompt_text"), COLUMNS.index("output_text"))
INSERT = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def prompt_text(messages: Sequence[dict[str, Any]]) -> str:
    """The prompt as the log hashes it: the messages' roles and contents as compact, key-sorted JSON, so
    the same conversation has the same ``prompt_sha256`` from any client."""
    return json.dumps([{"role": m.get("role"), "content": m.get("content")} for m in messages],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def prompt_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _row(record: RequestRecord, mask: Callable[[str], str]) -> tuple[Any, ...]:
    """The values in column order, texts masked (in the writer thread: masking costs)."""
    values = [getattr(record, c) for c in COLUMNS]
    values[MIRRORED] = int(record.mirrored)
    if record.answer_in_format is not None:
        values[IN_FORMAT] = int(record.answer_in_format)
    for i in TEXTS:
        if values[i] is not None:
            values[i] = mask(values[i])
    return tuple(values)


def scrubber() -> Callable[[str], str]:
    """``ftp.redact.scrub`` with the known secret values read once (per batch, not per text: reading
    them scans the environment)."""
    from ftp.redact import MASK, known_secrets, mask_shapes

    secrets = sorted(known_secrets(), key=len, reverse=True)

    def scrub(text: str) -> str:
        for value in secrets:
            if value in text:
                text = text.replace(value, MASK)
        return mask_shapes(text)

    return scrub


def migrate(db: sqlite3.Connection, path: Path) -> int:
    """Apply the migrations the file lacks, inside the caller's transaction; the version it is now at."""
    current = db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
    if current > LATEST:
        raise UserError(f"{path}: the request log is at schema version {current}, newer than this ftp "
                        f"understands ({LATEST}); upgrade ftp or set serve.request_log to another file")
    for version in range(current + 1, LATEST + 1):
        for statement in MIGRATIONS[version]:
            db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (?, ?)", (version, utc_now()))
    return LATEST


@contextlib.contextmanager
def writing(path: Path) -> Iterator[sqlite3.Connection]:
    """One short write transaction on the log's file, migrated first: for the feedback and the monitor's
    decisions, which live beside the requests (``ftp.monitor.feedback``, ``ftp.monitor.decisions``)."""
    ensure_wal(path)
    with connect(path, VERSION_TABLE) as db:
        migrate(db, path)
        yield db


def read_table(path: Path, table: str, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Rows of ``sql`` on one of the log file's tables; none when the file or the table (a first-schema
    file) is not there yet: the monitor reads feedback and decisions without migrating anyone's file."""
    if not Path(path).is_file():
        return []
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone():
            return []
        return [dict(r) for r in conn.execute(sql, args)]
    except sqlite3.Error as exc:
        raise FtpError(f"{path}: cannot read the request log's {table}: {exc}") from None
    finally:
        conn.close()


def ensure_wal(path: Path, patience: float = 30.0) -> None:
    from ftp.sqlite_store import ensure_wal as switch

    switch(path, "the request log", patience)


def prune(db: sqlite3.Connection, retention_days: float, max_rows: int) -> int:
    """Delete rows older than ``retention_days``, then the oldest beyond ``max_rows``; how many went."""
    try:
        cutoff = iso_utc(datetime.now(timezone.utc) - timedelta(days=retention_days))
        gone = db.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
    except OverflowError:  # a retention longer than the calendar: nothing is old enough
        gone = 0
    extra = db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] - max_rows
    if extra > 0:
        gone += db.execute("DELETE FROM requests WHERE id IN (SELECT id FROM requests ORDER BY ts, id LIMIT ?)",
                           (extra,)).rowcount
    return int(gone)


class RequestLog:
    """Appends rows to the SQLite log at ``path`` from a writer thread; see the module's docstring.

    ``mask``: applied to the texts kept with ``log_content`` (in the writer thread); the default masks
    secret shapes and known secret values (as ``ftp.redact.scrub`` does). Counters: ``written``, ``dropped``
    (queue full, or appended after ``close``), ``lost`` (a batch the disk refused).
    """

    def __init__(self, path: Path, *, log_content: bool, retention_days: float, max_rows: int,
                 prune_every: int = 1000, busy_timeout: float = 30.0,
                 mask: Callable[[str], str] | None = None, queue_size: int = QUEUE_SIZE) -> None:
        self.path, self.log_content = Path(path), log_content
        self.retention_days, self.max_rows, self.prune_every = retention_days, max_rows, prune_every
        self.busy_timeout = busy_timeout
        self.mask = mask
        self.appended = self.written = self.dropped = self.lost = 0
        self._queue: queue.Queue[RequestRecord] = queue.Queue(maxsize=queue_size)
        self._done = threading.Condition()
        self._handled = 0  # rows written or lost: what flush waits for
        self._closed = threading.Event()
        ensure_wal(self.path, busy_timeout)
        with connect(self.path, VERSION_TABLE) as db:  # at start, before serving: not on the event loop
            migrate(db, self.path)
            prune(db, retention_days, max_rows)
        self._thread = threading.Thread(target=self._run, name=f"request-log {self.path.name}", daemon=True)
        self._thread.start()

    def append(self, record: RequestRecord) -> None:
        """Queue one row and return at once (texts dropped here unless ``log_content``). The time stamp
        is put in the log's one form here, so a malformed one fails its caller, not a whole batch."""
        changes: dict[str, Any] = {}
        if not self.log_content and (record.prompt_text is not None or record.output_text is not None):
            changes.update(prompt_text=None, output_text=None)
        if not CANONICAL.fullmatch(record.ts):
            changes["ts"] = normalise_ts(record.ts)
        if changes:
            record = dataclasses.replace(record, **changes)
        with self._done:
            if self._closed.is_set():
                self.dropped += 1
                return
            try:
                self._queue.put_nowait(record)
            except queue.Full:
                self.dropped += 1
                return
            self.appended += 1

    def flush(self, timeout: float = 5) -> None:
        """Wait until every row appended so far is written (or lost); FtpError after ``timeout`` seconds."""
        with self._done:
            target = self.appended
            if not self._done.wait_for(lambda: self._handled >= target, timeout):
                raise FtpError(f"{self.path}: {target - self._handled} request-log rows not written after "
                               f"{timeout:g} s (is another process holding the file locked?)")

    def close(self, timeout: float = 5) -> None:
        """Write what is queued (for up to ``timeout`` seconds) and stop the writer; later appends are dropped."""
        with self._done:  # under the lock: no append is between its check and its put
            self._closed.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s: the request-log writer did not finish in %g s; %d rows unwritten",
                        self.path, timeout, self.appended - self._handled)

    def _run(self) -> None:
        """The writer thread: batches until closed and drained, a prune every ``prune_every`` rows."""
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL: durable against crashes of the process
            since_prune = 0
            while True:
                batch = self._take()
                if not batch:
                    if self._closed.is_set() and self._queue.empty():
                        return
                    continue
                self._write(conn, batch)
                since_prune += len(batch)
                if since_prune >= self.prune_every:
                    self._transaction(conn, lambda: prune(conn, self.retention_days, self.max_rows), "prune")
                    since_prune = 0
        finally:
            conn.close()

    def _take(self) -> list[RequestRecord]:
        """The next batch: wait a little for a first row, then whatever else is queued, up to ``BATCH``."""
        try:
            batch = [self._queue.get(timeout=0.1)]
        except queue.Empty:
            return []
        while len(batch) < BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(self, conn: sqlite3.Connection, batch: list[RequestRecord]) -> None:
        mask = self.mask or (scrubber() if self.log_content else str)
        ok = self._transaction(conn, lambda: conn.executemany(INSERT, [_row(r, mask) for r in batch]), "write")
        with self._done:
            if ok:
                self.written += len(batch)
            else:
                self.lost += len(batch)
            self._handled += len(batch)
            self._done.notify_all()

    def _transaction(self, conn: sqlite3.Connection, work: Callable[[], object], what: str) -> bool:
        """``work`` in one IMMEDIATE transaction; a failure is logged and the writer carries on (the
        server must keep answering when its log cannot be written)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            work()
            conn.execute("COMMIT")
            return True
        except Exception as exc:  # noqa: BLE001 (a dead writer would lose every later row)
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.warning("%s: request log %s failed: %s: %s", self.path, what, type(exc).__name__, exc)
            return False


def read_requests(path: Path, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """The logged rows (column name to value, ``mirrored`` as 0/1) with ``since <= ts < until``, oldest
    first; times are ISO (any offset, or UTC when none is given)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no request log there; ftp serve writes it (serve.request_log, default "
                        f"requests.db beside deploy.store)")
    conn = sqlite3.connect(path, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        version = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        if version > LATEST:
            raise UserError(f"{path}: the request log is at schema version {version}; this ftp reads up to {LATEST}")
        where, args = [], []
        for op, bound in ((">=", since), ("<", until)):
            if bound is not None:
                where.append(f"ts {op} ?")
                args.append(normalise_ts(bound))
        present = {r[1] for r in conn.execute("PRAGMA table_info(requests)")}  # a first-schema file lacks the later columns
        sql = f"SELECT {', '.join(c if c in present else f'NULL AS {c}' for c in COLUMNS)} FROM requests"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        return [dict(r) for r in conn.execute(sql + " ORDER BY ts, id", args)]
    except sqlite3.Error as exc:
        raise FtpError(f"{path}: cannot read the request log: {exc}") from None
    finally:
        conn.close()
