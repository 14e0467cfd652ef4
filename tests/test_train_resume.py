"""Training killed with SIGKILL mid-way resumes from its last checkpoint: the step count, learning-rate
schedule and data order continue, no step is trained twice, and the result equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import invoke, reference_run, train_rows

ARGS = ("--quiet", "--steps", "validate,split,train", "--set", "train.epochs=6", "--set", "train.checkpoint_steps=3",
        "--set", "train.early_stopping=null", "--set", "backends.local.devices=cpu")


def _alive(work_dir: Path) -> bool:
    """Whether any process still runs with ``work_dir`` on its command line (a distributed worker)."""
    needle = f"{work_dir.parent.name}/distributed"  # the run id: the command line may hold a relative path
    deadline = time.time() + 10  # the kernel delivers the parent-death signal promptly, not instantly
    while time.time() < deadline:
        if not any(needle in _cmdline(pid) for pid in os.listdir("/proc") if pid.isdigit()):
            return False
        time.sleep(0.1)
    return True


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("extra", [(), ("--set", "backends.local.processes=2", "--set", "backends.local.strategy=fsdp")],
                         ids=["one-process", "fsdp-two-processes"])
def test_sigkill_mid_training_then_resume(project: Path, extra: tuple[str, ...]) -> None:
    """The whole process group is killed, as when the machine goes down (torchrun's workers too)."""
    args = (*ARGS, *extra)
    reference = train_rows(reference_run(project, *args))
    assert len(reference) == 36

    proc = subprocess.Popen([sys.executable, "-m", "ftp", "run", "pipeline.yaml", *args], cwd=project,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline, loop = time.time() + 120, None
    while time.time() < deadline and proc.poll() is None:
        found = list(project.glob("runs/tiny/*/checkpoint/loop.json"))
        if found and json.loads(found[0].read_text())["step"] >= 6:
            loop = found[0]
            break
        time.sleep(0.02)
    assert loop is not None, "no checkpoint was written before training ended"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    workers = project.glob("runs/tiny/*/distributed")  # torchrun's workers run in sessions of their own:
    assert not any(_alive(w) for w in workers), "a worker outlived its parents"  # they must die with them
    run_dir = loop.parent.parent
    assert json.loads((run_dir / "state.json").read_text())["steps"]["train"]["status"] == "running"
    killed_at = json.loads(loop.read_text())["step"]

    result = invoke("run", "--resume", run_dir.name, "--json")
    assert result.exit_code == 0, result.stderr
    resumed = [json.loads(line) for line in result.output.splitlines() if '"resumed"' in line]
    assert resumed and f"step {killed_at} of 36" in resumed[0]["message"]
    rows = train_rows(run_dir)
    assert [r["step"] for r in rows] == list(range(1, 37))  # every step once: none lost, none twice
    assert [r["lr"] for r in rows] == [r["lr"] for r in reference]  # the schedule continued
    for got, want in zip(rows, reference):  # same data order and RNG: the same losses as a straight run
        assert abs(got["train_loss"] - want["train_loss"]) < 1e-4, (got["step"], got["train_loss"], want["train_loss"])
    assert not (run_dir / "checkpoint").exists()
    assert json.loads((run_dir / "state.json").read_text())["steps"]["train"]["outputs"]["steps"] == 36


def test_a_kill_between_the_checkpoint_swap_renames_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    """save() renames the old checkpoint away, then the new one in: a SIGKILL between the two leaves only
    ``.checkpoint.old`` (and the new one half-named); load must take the old one, not start over."""
    import torch

    from ftp.backends.local import checkpoint

    model = torch.nn.Linear(2, 2)
    optimiser = torch.optim.AdamW(model.parameters())
    folder = tmp_path / "checkpoint"
    checkpoint.save(folder, checkpoint.LoopState(step=3, fingerprint="fp"), checkpoint.trainable_state(model),
                    optimiser.state_dict())
    folder.rename(tmp_path / ".checkpoint.old")  # the first rename of the next save, then the kill
    (tmp_path / ".checkpoint.tmp").mkdir()
    state = checkpoint.load(folder, "fp", model, optimiser)
    assert state is not None and state.step == 3
