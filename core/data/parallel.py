"""One large data file read by several processes, each over a byte range, with the report one process gives.

The file is cut into ``workers`` ranges at line boundaries. The parent reads the first range itself and
starts one worker process per other range (a fresh interpreter, ``python -c``: no fork, so no copy of
the parent's threads or locks, and no re-import of the command line's ``__main__``); a worker counts
the newlines before its range for its first line number, reads the range into a ``part`` of every check
and sends the parts back, pickled. The parent merges them in file order, then ``end`` and ``finish``
run once, in the parent, as they do with one process.

Findings made while observing carry their line numbers. The cap of ``MAX_FINDINGS_PER_CODE`` per code
is the whole file's: a part numbers what its ``finding`` issued, and the parent keeps a finding only
while the counts of the ranges before it leave room, so the same first 50 by line order survive and
``overflow`` counts the same rest. Findings are kept in the order one process would emit them.

A file is read by one process when it is a table, smaller than two ranges of ``MIN_PART_BYTES``, or
when any check has no ``part`` (a third-party check that does not declare it can run in parts) or its
parts cannot be pickled or imported by module name (a project-local plugin file). A worker that fails
in any way is replaced by the parent reading that range itself, so the report never depends on it.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from ftp.data.checks import MAX_FINDINGS_PER_CODE, DataCheck, Record
from ftp.data.lines import read_records
from ftp.types import DatasetRef, Finding

MIN_PART_BYTES = 32 * 2**20  # a range is at least this big: starting a worker costs about half a second
HEAD_START = 0.025  # the parent's range is this much larger: workers start late and count newlines first
CHUNK = 4 * 2**20
WORKER = ("import pickle, sys; job = pickle.load(sys.stdin.buffer); job['payload'] = sys.stdin.buffer.read(); "
          "sys.path[:] = job['sys_path']; from ftp.data.parallel import work; work(job)")

Piece = tuple[list[DataCheck], list[tuple[int, Finding, int | None]], int]  # parts, findings, last line


def resolve_workers(value: Any) -> int:
    """``auto`` (or None): the CPUs this process may run on; else the number, at least 1."""
    if value in (None, "auto"):
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    return max(1, int(value))


def scan_in_parts(ref: DatasetRef, checks: list[DataCheck], emit: Callable[[int, list[Finding]], None],
                  max_line_bytes: int, workers: int) -> int | None:
    """Read ``ref`` in ranges into every check, giving ``emit`` each finding kept, with its check's index,
    in the order one process makes them; the file's last line number, or None when the file is to be
    read by one process (then nothing happened)."""
    from ftp.data.table_files import is_table

    if is_table(ref.path):
        return None
    size = ref.path.stat().st_size
    n = min(workers, size // MIN_PART_BYTES)
    if n < 2:
        return None
    made = [check.part() for check in checks]
    parts = [p for p in made if p is not None]
    if len(parts) < len(made):
        return None
    payload = _payload(ref, parts)
    if payload is None:
        return None
    ranges = cut(ref, size, n)
    if len(ranges) < 2:
        return None
    jobs = [{"sys_path": list(sys.path), "payload": payload, "start": start, "end": end,
             "first_line": 1 if start == 0 else None, "max_line_bytes": max_line_bytes,
             "last": end == size} for start, end in ranges]
    procs = [_start(job) for job in jobs[1:]]
    lines = 0
    try:
        for k, job in enumerate(jobs):
            proc = procs[k - 1] if k else None
            piece = (_receive(proc) if proc is not None else None) or run_part(job)
            _merge(checks, piece, emit)
            lines = piece[2]
    finally:
        for proc in filter(None, procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return lines


def cut(ref: DatasetRef, size: int, n: int) -> list[tuple[int, int]]:
    """``n`` byte ranges, each starting after a newline (the first at 0), of about equal size but the
    first (the parent's, ``HEAD_START`` larger)."""
    bounds = [0]
    with ref.path.open("rb") as fh:
        for k in range(1, n):
            at = _line_start(fh, max(bounds[-1], int(size * (k + HEAD_START) / (n + HEAD_START))), size)
            if at > bounds[-1] and at < size:
                bounds.append(at)
    bounds.append(size)
    return list(zip(bounds[:-1], bounds[1:]))


def _line_start(fh: Any, at: int, size: int) -> int:
    """The first line start at or after ``at``: just past the first newline at or after ``at - 1``."""
    fh.seek(at - 1)
    pos = at - 1
    while True:
        block = fh.read(CHUNK)
        if not block:
            return size
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(block)


def count_newlines(ref: DatasetRef, end: int) -> int:
    """Newlines in the first ``end`` bytes: the line number just before a range that starts at ``end``."""
    count = 0
    with ref.path.open("rb") as fh:
        while end > 0:
            block = fh.read(min(CHUNK, end))
            if not block:
                break
            count += block.count(b"\n")
            end -= len(block)
    return count


def run_part(job: dict[str, Any]) -> Piece:
    """One range through fresh parts of every check (in a worker, or in the parent): what ``_merge`` takes."""
    ref, parts = pickle.loads(job["payload"])
    first = job["first_line"] or count_newlines(ref, job["start"]) + 1
    records = read_records(ref, job["max_line_bytes"], job["start"], job["end"], first)
    found: list[tuple[int, Finding, int | None]] = []
    lines = _observe(records, parts, found)
    for i, part in enumerate(parts):
        _keep(found, i, part, part.end_part(job["last"]))
        part._issued = None
    return parts, found, lines


def _observe(records: Any, parts: list[DataCheck], found: list[tuple[int, Finding, int | None]]) -> int:
    lines = 0
    observers = [(i, part, part.observe) for i, part in enumerate(parts)]
    record: Record
    for record in records:
        lines = record.line
        for i, part, observe in observers:
            result = observe(record)
            if result:
                _keep(found, i, part, result)
    return lines


def _keep(found: list[tuple[int, Finding, int | None]], i: int, part: DataCheck, result: list[Finding] | None) -> None:
    """Each finding with its number among its code's in this part (None: not made by ``finding``, uncapped)."""
    issued = part._issued
    for f in result or ():
        entry = issued.pop(id(f), None) if issued else None
        found.append((i, f, entry[0] if entry is not None and entry[1] is f else None))


def _merge(checks: list[DataCheck], piece: Piece, emit: Callable[[int, list[Finding]], None]) -> None:
    """A range's findings within the whole file's cap, then its counts and state, into the parent's checks."""
    parts, found, _ = piece
    for i, f, n in found:
        if n is None or checks[i]._counts[f.code] + n <= MAX_FINDINGS_PER_CODE:
            emit(i, [f])
    for check, part in zip(checks, parts):
        check._counts.update(part._counts)
        check.merge(part)


class _Pickler(pickle.Pickler):
    """Notes the module of everything it pickles, for ``_payload``."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.modules: set[str] = set()

    def reducer_override(self, obj: Any) -> Any:
        module = getattr(obj, "__module__", None) if isinstance(obj, type) or callable(obj) else None
        self.modules.add(module if isinstance(module, str) else type(obj).__module__)
        return NotImplemented


def _payload(ref: DatasetRef, parts: list[DataCheck]) -> bytes | None:
    """The parts pickled, or None when they cannot be, or name a module a fresh interpreter cannot import
    by name (a project-local plugin file's, ``__main__``)."""
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    try:
        pickler.dump((ref, parts))
    except (pickle.PicklingError, TypeError, AttributeError):
        return None
    tops = {module.split(".")[0] for module in pickler.modules}
    return buffer.getvalue() if all(_findable(top) for top in tops) else None


def _findable(top: str) -> bool:
    """Whether a fresh interpreter finds this top-level module (asking the finders, not ``sys.modules``)."""
    if top in sys.builtin_module_names:
        return True
    for finder in sys.meta_path:
        try:
            if finder.find_spec(top, None) is not None:
                return True
        except Exception:  # noqa: BLE001 - a finder that cannot answer does not find it
            continue
    return False


# --- the worker processes --------------------------------------------------------------------------


def _start(job: dict[str, Any]) -> subprocess.Popen[bytes] | None:
    """A worker for one job (None when no process can be started: the parent reads the range): the job's
    header pickled, then the parts' payload as it is (shared by the workers, not copied)."""
    try:
        proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except OSError:
        return None
    header = pickle.dumps({k: v for k, v in job.items() if k != "payload"}, protocol=pickle.HIGHEST_PROTOCOL)
    threading.Thread(target=_send, args=(proc, header, job["payload"]), daemon=True).start()  # a pipe holds 64 KiB
    return proc


def _send(proc: subprocess.Popen[bytes], header: bytes, payload: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(header)
        proc.stdin.write(payload)
        proc.stdin.close()
    except OSError:  # the worker died; _receive notices
        pass


def _receive(proc: subprocess.Popen[bytes]) -> Piece | None:
    """The worker's piece, or None for any failure (the parent then reads the range itself)."""
    assert proc.stdout is not None
    try:
        status, value = pickle.load(proc.stdout)
    except Exception:  # noqa: BLE001 - a dead or broken worker: whatever it sent is not trusted
        return None
    finally:
        proc.stdout.close()
    return value if status == "ok" and proc.wait() == 0 else None


def work(job: dict[str, Any]) -> None:
    """A worker's life: one range, the piece pickled to the original stdout (prints go to stderr)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    try:
        result: tuple[str, Any] = ("ok", run_part(job))
    except BaseException as exc:  # noqa: BLE001 - reported, and the parent reads the range itself
        result = ("error", repr(exc))
    pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.close()
