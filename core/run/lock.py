"""One process per run directory: an OS file lock on ``<run_dir>/.lock``.

Two ``ftp run --resume`` of one run at once would both train and interleave their rows in
``metrics.jsonl``; ``ftp runs cancel`` racing a resume could cancel a job the other process is about
to reattach to. So every command that changes a run holds this lock while it runs, and a second one
exits 2 at once naming the holder.

Why ``flock`` on a file kept open (and not a PID file checked for liveness): the kernel releases
the lock when the holder's last descriptor closes, which includes SIGKILL, the OOM killer and a
crash, so a lock left by a dead process never blocks anyone; its leftover text is simply
overwritten by the next holder. The text (PID, command line, start time) is only for the message.

The descriptor is opened ``O_CLOEXEC`` (and not inheritable), so programs started with exec
(torchrun and its workers, git) never hold the lock: it cannot outlive the ftp process. A plain
``fork`` without exec (DataLoader workers) shares it, and such children die with their parent.

Locks are per process and re-entrant: taking a run's lock again in the process that holds it returns
the same lock (the CLI's in-process test runner runs many commands in one process), and
:func:`release_all` drops every lock at the end of a command.

Windows has no ``fcntl``: ``msvcrt.locking`` locks one byte far past the text instead (released
when the process ends, too). The project targets Linux and macOS; the Windows path is not tested.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ftp.errors import UserError

LOCK_NAME = ".lock"
_WINDOWS_OFFSET = 1 << 30  # the byte msvcrt locks: past any holder text, so the text stays readable
_held: dict[str, "RunLock"] = {}


class RunInUse(UserError):
    """Another process holds the run's lock. Exit 2: the user decides whether to wait or stop it."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        self.holder = holder
        super().__init__(message)


class RunLock:
    """A held lock on one run directory; :meth:`release` (or the process ending) gives it back."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        """Close the descriptor, which releases the lock; the file stays (deleting it would race a taker)."""
        _held.pop(str(self.path), None)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


WAIT_OR_STOP = "wait for it to finish or stop it ({stop})"
STOP_FIRST = "stop it first ({stop}), then run ftp runs cancel again"


def acquire(run_dir: Path, run_id: str, then: str = WAIT_OR_STOP) -> RunLock:
    """The lock of ``run_dir``, taken without waiting; RunInUse names the holder when another process has it.

    ``then`` is what the user should do about the holder, ``{stop}`` being how to stop it
    (:data:`STOP_FIRST` for ``ftp runs cancel``).
    """
    path = (run_dir / LOCK_NAME).resolve()
    if str(path) in _held:
        return _held[str(path)]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    os.set_inheritable(fd, False)
    if not _try_lock(fd):
        os.close(fd)
        holder = read_holder(path)
        raise RunInUse(in_use_message(run_id, holder, then), holder)
    _write_holder(fd)
    lock = RunLock(path, fd)
    _held[str(path)] = lock
    return lock


def release_all() -> None:
    """Release every lock this process holds (the end of a CLI command)."""
    for lock in list(_held.values()):
        lock.release()


def _try_lock(fd: int) -> bool:
    """An exclusive, non-blocking lock on ``fd``: True when taken, False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        return _try_lock_windows(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _try_lock_windows(fd: int) -> bool:
    import msvcrt

    os.lseek(fd, _WINDOWS_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def _write_holder(fd: int) -> None:
    """Who holds the lock, for the message a second process prints; overwrites a dead holder's text."""
    text = json.dumps({"pid": os.getpid(), "command": command_line(),
                       "started": datetime.now().astimezone().isoformat(timespec="seconds")})
    data = (text + "\n").encode("utf-8")
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, data)  # then cut what a longer, older text left: a reader never sees an empty file
    os.ftruncate(fd, len(data))


def command_line() -> str:
    """This process's command as a user would type it (``ftp run --resume ID``), at most 200 characters."""
    argv = sys.argv or [""]
    name = Path(argv[0]).name
    if name in ("ftp", "__main__.py"):  # the script, or python -m ftp
        parts = ["ftp", *argv[1:]]
    elif not name or name.startswith("-"):  # python -c ...
        parts = [Path(sys.executable).name, *argv]
    else:
        parts = [name, *argv[1:]]
    text = shlex.join(parts)
    return text if len(text) <= 200 else text[:197] + "..."


def read_holder(path: Path, attempts: int = 5) -> dict[str, Any]:
    """The holder's PID, command and start time as the lock file says them ({} when unreadable).

    The holder writes its text just after taking the lock, so a reader may briefly see the previous
    (dead) holder's text or none: it reads again a few times until the PID is a live process.
    """
    holder: dict[str, Any] = {}
    for attempt in range(attempts):
        try:
            holder = json.loads(path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            holder = {}
        if isinstance(holder, dict) and _alive(holder.get("pid")):
            return holder
        time.sleep(0.05 * (attempt + 1))
    return holder if isinstance(holder, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def in_use_message(run_id: str, holder: dict[str, Any], then: str) -> str:
    """``run ID is in use by process PID (COMMAND), started HH:MM:SS; wait ... (Ctrl-C / kill PID)``."""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return f"run {run_id} is in use by another process; {then.format(stop='Ctrl-C in its terminal')}"
    command = f" ({holder['command']})" if holder.get("command") else ""
    started = _started(holder.get("started"))
    return f"run {run_id} is in use by process {pid}{command}{started}; {then.format(stop=f'Ctrl-C / kill {pid}')}"


def _started(iso: Any) -> str:
    """``, started 08:31:02`` today, with the date on another day; empty when unknown."""
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return ""
    today = datetime.now(when.tzinfo).date()
    return f", started {when:%H:%M:%S}" if when.date() == today else f", started {when:%Y-%m-%d %H:%M:%S}"
