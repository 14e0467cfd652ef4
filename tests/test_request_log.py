"""The request log against real SQLite files: every column round-trips, texts only with log_content,
retention and max rows, several processes appending to one file, and append never waiting on the disk."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from ftp.errors import FtpError, UserError
from ftp.serve.request_log import (COLUMNS, LATEST, RequestLog, RequestRecord, iso_utc, normalise_ts, prompt_sha256,
                                   prompt_text, read_requests)

SECRET_PROMPT = "my account number is 4242-unique-prompt-text"
SECRET_ANSWER = "the answer nobody may store 9d1c"


def record(i: int = 0, **changes: object) -> RequestRecord:
    text = prompt_text([{"role": "user", "content": SECRET_PROMPT}])
    fields: dict[str, object] = dict(
        request_id=f"chatcmpl-{i}", model="ticket-triage", endpoint="ticket-triage", slot="green", model_version=3,
        routing_reason="hash", status=200, latency_ms=41.5, ttft_ms=12.25, queue_ms=1.5, prompt_tokens=17,
        completion_tokens=8, finish_reason="length", prompt_sha256=prompt_sha256(text), prompt_chars=len(text),
        output_chars=len(SECRET_ANSWER), prompt_text=text, output_text=SECRET_ANSWER)
    fields.update(changes)
    return RequestRecord(**fields)


def open_log(path: Path, **kwargs: object) -> RequestLog:
    settings: dict[str, object] = dict(log_content=False, retention_days=30, max_rows=100_000)
    settings.update(kwargs)
    return RequestLog(path, **settings)


def ago(days: float) -> str:
    return iso_utc(datetime.now(timezone.utc) - timedelta(days=days))


def test_a_row_round_trips_with_every_column(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, log_content=True)
    sent = record(1, mirrored=True, status=503, error_type="server_error", ts="2026-11-30T12:00:00Z")
    log.append(sent)
    log.close()
    (row,) = read_requests(path)
    assert set(row) == set(COLUMNS)
    assert row["ts"] == "2026-11-30T12:00:00.000+00:00"  # one form, so text order is time order
    assert row["mirrored"] == 1 and row["status"] == 503 and row["error_type"] == "server_error"
    assert {k: row[k] for k in ("model_version", "latency_ms", "ttft_ms", "queue_ms", "prompt_tokens")} == \
        {"model_version": 3, "latency_ms": 41.5, "ttft_ms": 12.25, "queue_ms": 1.5, "prompt_tokens": 17}
    assert row["prompt_text"] == sent.prompt_text and row["output_text"] == SECRET_ANSWER
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == LATEST


def test_content_off_keeps_no_text_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, log_content=False)
    for i in range(50):
        log.append(record(i))
    log.close()
    rows = read_requests(path)
    assert len(rows) == 50 and all(r["prompt_text"] is None and r["output_text"] is None for r in rows)
    assert rows[0]["prompt_sha256"] == record().prompt_sha256 and rows[0]["output_chars"] == len(SECRET_ANSWER)
    for file in tmp_path.iterdir():  # not in the database, the WAL or anywhere else
        data = file.read_bytes()
        assert SECRET_PROMPT.encode() not in data and SECRET_ANSWER.encode() not in data, file


def test_content_on_masks_secrets(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, log_content=True)
    log.append(record(output_text="use the key sk-abcdefghijklmnopqrstuvwx1234 now"))
    log.append(record(2, output_text="as an email"))
    log.close()
    first, second = read_requests(path)
    assert first["output_text"] == "use the key *** now" and second["output_text"] == "as an email"
    custom = open_log(tmp_path / "other.db", log_content=True, mask=str.upper)
    custom.append(record(output_text="loud"))
    custom.close()
    assert read_requests(tmp_path / "other.db")[0]["output_text"] == "LOUD"


def test_retention_at_start_and_every_n_writes(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, retention_days=365)
    for i, days in enumerate([40, 20, 5, 0.001]):
        log.append(record(i, ts=ago(days)))
    log.close()
    assert len(read_requests(path)) == 4
    restarted = open_log(path, retention_days=10)  # at start: the 40- and 20-day-old rows go
    assert [r["request_id"] for r in read_requests(path)] == ["chatcmpl-2", "chatcmpl-3"]
    restarted.close()

    running = open_log(path, retention_days=1, prune_every=10)  # at start: the 5-day-old row goes
    assert [r["request_id"] for r in read_requests(path)] == ["chatcmpl-3"]
    for i in range(10, 19):
        running.append(record(i, ts=ago(3)))  # 9 rows: under prune_every, kept for now
    running.flush()
    assert len(read_requests(path)) == 10
    running.append(record(19))  # the 10th write prunes everything older than a day
    running.flush()
    running.close()
    assert [r["request_id"] for r in read_requests(path)] == ["chatcmpl-3", "chatcmpl-19"]


def test_max_rows_keeps_the_newest(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, max_rows=50, prune_every=25)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(120):
        log.append(record(i, ts=iso_utc(start + timedelta(seconds=i))))
        if i % 20 == 19:
            log.flush()  # several batches, so several prunes
    log.close()
    kept = [r["request_id"] for r in read_requests(path)]
    assert kept == [f"chatcmpl-{i}" for i in range(70, 120)]
    assert len(read_requests(path, since=iso_utc(start + timedelta(seconds=100)))) == 20
    until = read_requests(path, since=iso_utc(start + timedelta(seconds=100)).replace("+00:00", "Z"),
                          until=iso_utc(start + timedelta(seconds=105)))
    assert [r["request_id"] for r in until] == [f"chatcmpl-{i}" for i in range(100, 105)]


WRITER = """
import sys
from pathlib import Path
from ftp.serve.request_log import RequestLog, RequestRecord
path, who, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = RequestLog(path, log_content=False, retention_days=30, max_rows=1_000_000, prune_every=300)
for i in range(n):
    log.append(RequestRecord(request_id=f"{who}-{i}", model="m", status=200, latency_ms=float(i)))
log.flush(60)
log.close()
"""


def test_processes_share_one_file(tmp_path: Path) -> None:
    """Six server-like processes created and appended to one new file at once: every row is there once."""
    path, n = tmp_path / "shared" / "requests.db", 2000
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"p{k}", str(n)], stderr=subprocess.PIPE)
             for k in range(6)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    ids = [r["request_id"] for r in read_requests(path)]
    assert len(ids) == 6 * n and set(ids) == {f"p{k}-{i}" for k in range(6) for i in range(n)}


def test_append_never_waits_for_the_disk(tmp_path: Path) -> None:
    """Another process holds the file's write lock: appends still return at once, flush says what is
    pending, and the rows are written once the lock goes."""
    path = tmp_path / "requests.db"
    log = open_log(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer thread now waits on its busy timeout
    try:
        log.append(record(0))
        time.sleep(0.3)  # the writer has taken that row and is stuck in its transaction
        slowest, start = 0.0, time.perf_counter()
        for i in range(1, 20_001):
            t = time.perf_counter()
            log.append(record(i))
            slowest = max(slowest, time.perf_counter() - t)
        total = time.perf_counter() - start
        assert total < 2.0 and slowest < 0.05, (total, slowest)
        with pytest.raises(FtpError, match="not written after 0.2 s"):
            log.flush(0.2)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    log.flush(30)
    assert log.written == 20_001 and log.dropped == 0 and log.lost == 0
    log.close()
    assert len(read_requests(path)) == 20_001


def test_a_full_queue_drops_and_a_refused_write_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    log = open_log(path, queue_size=10, busy_timeout=0.3)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        log.append(record(0))
        time.sleep(0.1)  # taken by the writer, which waits 0.3 s for the lock and then gives the batch up
        for i in range(1, 31):
            log.append(record(i))
        assert log.dropped == 20  # 10 queued, the rest dropped: the server never waits
        time.sleep(0.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    log.flush(10)
    log.close()
    log.append(record(99))  # after close: dropped, not an error
    assert log.lost >= 1 and log.dropped == 21 and log.written + log.lost == 11
    assert len(read_requests(path)) == log.written


def test_bad_input_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no request log there"):
        read_requests(tmp_path / "missing.db")
    with pytest.raises(UserError, match="not an ISO time"):
        normalise_ts("yesterday")
    assert normalise_ts("2026-11-30T13:00:00+01:00") == "2026-11-30T12:00:00.000+00:00"
    assert normalise_ts("2026-11-30") == "2026-11-30T00:00:00.000+00:00"
    path = tmp_path / "requests.db"
    log = open_log(path)
    with pytest.raises(UserError):
        log.append(record(ts="not a time"))
    log.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (?, ?)", (LATEST + 1, "later"))
    with pytest.raises(UserError, match="newer than this ftp"):
        open_log(path)
    with pytest.raises(UserError, match="schema version"):
        read_requests(path)


def test_the_prompt_hash_ignores_how_the_client_spelled_it() -> None:
    a = prompt_text([{"role": "user", "content": "hi", "name": "x"}])
    b = prompt_text([{"content": "hi", "role": "user"}])
    assert a == b and prompt_sha256(a) == prompt_sha256(b) and len(prompt_sha256(a)) == 64
