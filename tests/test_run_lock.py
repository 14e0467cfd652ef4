"""One process per run: a second ``ftp run --resume`` (or ``ftp runs cancel``) of a run another process holds
exits 2 at once naming that process, and a lock left by a killed process never blocks.

Everything here runs real processes: the run being held is an ``ftp`` process (paused with SIGSTOP where
the test needs it to sit still), and the lock is the project's own (core/run_lock.py), never a stand-in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke, train_rows

ARGS = ("--quiet", "--steps", "validate,split,train", "--set", "train.checkpoint_steps=3",
        "--set", "train.early_stopping=null", "--set", "backends.local.devices=cpu")


def ftp(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """A real ``ftp`` process in its own session (so a kill takes its whole group)."""
    return subprocess.Popen([sys.executable, "-m", "ftp", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(condition: Any, proc: subprocess.Popen[str], what: str, timeout: float = 180) -> Any:
    """Poll ``condition()`` until it is truthy, while ``proc`` is alive."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen (exit {proc.poll()}): {proc.stderr.read() if proc.stderr else ''}")


def run_dir_of(project: Path) -> Path | None:
    found = list(project.glob("runs/tiny/*/state.json"))
    return found[0].parent if found else None


def training_started(project: Path, rows: int = 2) -> Path | None:
    run_dir = run_dir_of(project)
    if run_dir is None or not (run_dir / "metrics.jsonl").exists():
        return None
    return run_dir if (run_dir / "metrics.jsonl").read_text().count("train_loss") >= rows else None


def checkpointed(project: Path) -> Path | None:
    found = list(project.glob("runs/tiny/*/checkpoint/loop.json"))
    try:
        return found[0].parent.parent if found and json.loads(found[0].read_text())["step"] >= 3 else None
    except ValueError:  # written as we read it
        return None


def assert_one_step_per_row(run_dir: Path, steps: int) -> None:
    assert [r["step"] for r in train_rows(run_dir)] == list(range(1, steps + 1))


def assert_in_use_line(stderr: str, run_id: str, pid: int) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    line = lines[0]
    assert line.startswith(f"error: run {run_id} is in use by process {pid} (ftp run"), line
    assert ", started " in line and f"kill {pid}" in line, line


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; whatever is still alive at the end is killed (with its group)."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_a_second_resume_while_a_run_trains_exits_2_naming_it(project: Path, procs: list[Any]) -> None:
    first = ftp("run", "pipeline.yaml", *ARGS, "--set", "train.epochs=6", cwd=project)
    procs.append(first)
    run_dir = wait_for(lambda: training_started(project), first, "training")
    os.kill(first.pid, signal.SIGSTOP)  # it holds the lock, mid-training, and sits still
    try:
        rows_before = (run_dir / "metrics.jsonl").read_text()
        started = time.time()
        second = subprocess.run([sys.executable, "-m", "ftp", "run", "--resume", run_dir.name, "--quiet"],
                                cwd=project, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert_in_use_line(second.stderr, run_dir.name, first.pid)
        assert "wait for it to finish or stop it (Ctrl-C" in second.stderr
        assert time.time() - started < 60 and (run_dir / "metrics.jsonl").read_text() == rows_before
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert_one_step_per_row(run_dir, 36)


def killed_after_a_checkpoint(project: Path, procs: list[Any], epochs: int) -> tuple[subprocess.Popen[str], Path]:
    """A run SIGKILLed (its whole process group) once it has written a checkpoint: (its process, its run dir)."""
    first = ftp("run", "pipeline.yaml", *ARGS, "--set", f"train.epochs={epochs}", cwd=project)
    procs.append(first)
    run_dir = wait_for(lambda: checkpointed(project), first, "a checkpoint")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    return first, run_dir


def test_a_run_killed_with_sigkill_does_not_block_its_resume(project: Path, procs: list[Any]) -> None:
    first, run_dir = killed_after_a_checkpoint(project, procs, epochs=6)
    assert json.loads((run_dir / ".lock").read_text())["pid"] == first.pid  # its text is left behind

    resumed = subprocess.run([sys.executable, "-m", "ftp", "run", "--resume", run_dir.name, "--quiet"],
                             cwd=project, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert_one_step_per_row(run_dir, 36)
    holder = json.loads((run_dir / ".lock").read_text())
    assert holder["pid"] != first.pid and "--resume" in holder["command"]  # overwritten by the next holder


def test_two_resumes_racing_after_a_kill_train_once(project: Path, procs: list[Any]) -> None:
    _, run_dir = killed_after_a_checkpoint(project, procs, epochs=20)

    racers = [ftp("run", "--resume", run_dir.name, "--quiet", cwd=project) for _ in range(2)]
    procs.extend(racers)
    results = [(p, *p.communicate(timeout=300)) for p in racers]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    winner = next(p for p, _, _ in results if p.returncode == 0)
    loser_err = next(err for p, _, err in results if p.returncode == 2)
    assert_in_use_line(loser_err, run_dir.name, winner.pid)
    assert_one_step_per_row(run_dir, 120)
    assert json.loads((run_dir / "state.json").read_text())["steps"]["train"]["status"] == "done"


HOLDER = """
import subprocess, sys, time
from pathlib import Path
from ftp.run.lock import acquire
acquire(Path(sys.argv[1]), sys.argv[2])
child = subprocess.Popen(["sleep", "120"], close_fds=False) if len(sys.argv) > 3 else None
print(child.pid if child else "held", flush=True)
time.sleep(120)
"""


def hold_lock(run_dir: Path, run_id: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """A separate Python process holding the run's lock through ftp's own module; returns it and its first line."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir), run_id, *extra], stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_cancel_refuses_a_run_another_process_holds(quickstart: Path, fake_azure: Any, procs: list[Any]) -> None:
    """An Azure run left mid-job; while another process holds it, ``ftp runs cancel`` says to stop that first."""
    from helpers import FAST, RELAXED, only_run  # tests/azure is on sys.path while fake_azure is active

    fake_azure.fail("job", interrupt=True, skip=1)
    assert invoke("run", "pipeline.yaml", "--backend", "azure", "--yes", *FAST, *RELAXED).exit_code == 130
    run_dir = only_run(quickstart)
    holder, _ = hold_lock(run_dir, run_dir.name)
    procs.append(holder)
    state_before = (run_dir / "state.json").read_text()

    refused = invoke("runs", "cancel", run_dir.name)
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: run {run_dir.name} is in use by process {holder.pid} ")
    assert "stop it first" in lines[0] and f"kill {holder.pid}" in lines[0]
    assert fake_azure.count("cancel") == 0 and (run_dir / "state.json").read_text() == state_before

    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    cancelled = invoke("runs", "cancel", run_dir.name)
    assert cancelled.exit_code == 0, cancelled.stderr
    assert fake_azure.count("cancel") == 1 and "cancel requested" in cancelled.output


def test_a_child_started_by_the_holder_does_not_keep_the_lock(tmp_path: Path, procs: list[Any]) -> None:
    """The lock's descriptor is close-on-exec: a program the holder starts (torchrun, even with
    close_fds=False) cannot keep the run locked after the holder dies."""
    from ftp.run.lock import RunInUse, acquire

    holder, child_pid = hold_lock(tmp_path, "r1", "with-child")
    procs.append(holder)
    with pytest.raises(RunInUse, match=f"in use by process {holder.pid} "):
        acquire(tmp_path, "r1")
    os.kill(holder.pid, signal.SIGKILL)  # the holder only: its child lives on
    holder.wait(timeout=30)
    try:
        os.kill(int(child_pid), 0)  # still alive
        lock = acquire(tmp_path, "r1")
        lock.release()
    finally:
        os.kill(int(child_pid), signal.SIGKILL)
