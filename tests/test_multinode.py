"""Two hosts training one model (``backends.local.nodes``), as two torchrun agents on 127.0.0.1 with gloo:
each "host" is its own folder and its own ``ftp run`` process, started the same way a cluster starts
them (the same command; the node rank from the environment on one, from the file on the other). They
train like one process; node 0 writes the model, node 1 stops after the train step and exits 0."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke, reference_run, train_rows

ARGS = ("--json", "--steps", "validate,split,train", "--set", "train.epochs=1", "--set", "train.early_stopping=null",
        "--set", "backends.local.devices=cpu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def host(project: Path, name: str) -> Path:
    """A copy of the project as another host would have it (its own runs/ folder)."""
    folder = project / name
    folder.mkdir()
    shutil.copytree(project / "data", folder / "data")
    shutil.copy(project / "pipeline.yaml", folder / "pipeline.yaml")
    return folder


def start(folder: Path, *extra: str, rank_env: str | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "FTP_CACHE_DIR": str(folder / ".cache")}
    env.pop("FTP_NODE_RANK", None)
    if rank_env is not None:
        env["FTP_NODE_RANK"] = rank_env
    return subprocess.Popen([sys.executable, "-m", "ftp", "run", "pipeline.yaml", *ARGS, *extra], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_nodes_train_like_one_process(project: Path) -> None:
    reference = train_rows(reference_run(project, *ARGS))
    nodes = ("--set", "backends.local.nodes.count=2", "--set", f"backends.local.nodes.endpoint=127.0.0.1:{free_port()}")
    first = start(host(project, "node0"), *nodes, "--set", "backends.local.nodes.rank=0")
    second = start(host(project, "node1"), *nodes, rank_env="1")
    out0, err0 = first.communicate(timeout=600)
    out1, err1 = second.communicate(timeout=600)
    assert first.returncode == 0, err0[-3000:]
    assert second.returncode == 0, err1[-3000:]
    events0 = [json.loads(line) for line in out0.splitlines() if line.startswith("{")]
    events1 = [json.loads(line) for line in out1.splitlines() if line.startswith("{")]
    assert any(e["event"] == "distributed" and "2 nodes x 1, this is node 0" in e["message"] for e in events0)
    assert any(e["event"] == "handed_off" and "node 1 of 2" in e["message"] for e in events1)
    assert events1[-1]["event"] == "run_finished" and events1[-1]["status"] == "partial"

    run0 = next((project / "node0" / "runs" / "tiny").iterdir())
    run1 = next((project / "node1" / "runs" / "tiny").iterdir())
    got = train_rows(run0)
    assert [r["step"] for r in got] == [r["step"] for r in reference] == list(range(1, 7))
    for a, b in zip(got, reference):  # the micro-batches shared out over the two nodes: one process's losses
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3, (a, b)
        assert a["tokens"] == b["tokens"]
    assert (run0 / "model" / "adapter_model.safetensors").exists()
    assert not (run1 / "model" / "adapter_model.safetensors").exists()  # node 1 wrote no model
    state1 = json.loads((run1 / "state.json").read_text())
    assert state1["steps"]["train"]["status"] == "done" and state1["steps"]["train"]["outputs"]["node_rank"] == 1


def test_the_node_settings_are_checked_before_anything_starts(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FTP_NODE_RANK", raising=False)
    monkeypatch.delenv("SLURM_NODEID", raising=False)
    two = ("--set", "backends.local.nodes.count=2")
    result = invoke("run", "pipeline.yaml", *ARGS, *two, "--set", "backends.local.nodes.endpoint=127.0.0.1:29500")
    assert result.exit_code == 2 and "rank among the 2 nodes is not known" in result.stderr
    result = invoke("run", "pipeline.yaml", *ARGS, *two, "--set", "backends.local.nodes.rank=2",
                    "--set", "backends.local.nodes.endpoint=127.0.0.1:29500")
    assert result.exit_code == 2 and "not one of the 2 nodes' ranks (0 to 1)" in result.stderr
    result = invoke("run", "pipeline.yaml", *ARGS, *two, "--set", "backends.local.nodes.rank=0")
    assert result.exit_code == 2 and "backends.local.nodes.endpoint: missing" in result.stderr
    monkeypatch.setenv("SLURM_NODEID", "x")
    result = invoke("run", "pipeline.yaml", *ARGS, *two, "--set", "backends.local.nodes.endpoint=127.0.0.1:29500")
    assert result.exit_code == 2 and "SLURM_NODEID='x' is not a node rank" in result.stderr


@pytest.mark.slow
def test_hosts_without_node_0s_checkpoint_refuse_to_resume_rather_than_diverge(project: Path) -> None:
    """Rank 0 writes the checkpoints, into node 0's run directory: resumed on hosts that do not share it, node
    1's process would start from step 0 while node 0's continue. They compare steps first and both stop,
    saying why, instead of training from mismatched states or hanging in a collective."""
    import signal
    import time

    port = free_port()
    nodes = ("--set", "backends.local.nodes.count=2", "--set", f"backends.local.nodes.endpoint=127.0.0.1:{port}",
             "--set", "train.checkpoint_steps=2", "--set", "train.epochs=3")
    hosts = [host(project, f"node{i}") for i in range(2)]
    procs = [start(hosts[i], *nodes, rank_env=str(i)) for i in range(2)]
    deadline = time.time() + 300
    while time.time() < deadline and not list(hosts[0].glob("runs/tiny/*/checkpoint/loop.json")):
        time.sleep(0.1)
    assert list(hosts[0].glob("runs/tiny/*/checkpoint/loop.json")), "node 0 wrote no checkpoint"
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    time.sleep(2)  # the workers die with their parents (PR_SET_PDEATHSIG)
    assert not list(hosts[1].glob("runs/tiny/*/checkpoint/loop.json"))
    resumed = []
    for i in range(2):
        run_id = next((hosts[i] / "runs" / "tiny").iterdir()).name
        env = {**os.environ, "FTP_CACHE_DIR": str(hosts[i] / ".cache"), "FTP_NODE_RANK": str(i)}
        resumed.append(subprocess.Popen([sys.executable, "-m", "ftp", "run", "--resume", run_id],  # the same endpoint
                                        cwd=hosts[i], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outcomes = [p.communicate(timeout=300) for p in resumed]
    for p, (_, err) in zip(resumed, outcomes):
        assert p.returncode == 1, err[-2000:]
    assert all("found different checkpoints" in err for _, err in outcomes), outcomes[0][1][-2000:]
