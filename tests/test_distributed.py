"""Training in several processes under torchrun (DDP on gloo, on the CPU): the same steps and, with no
dropout, the same losses as one process, since each micro-batch is shared out and the loss is
normalised by the answer tokens of all processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, reference_run, train_rows

ARGS = ("--json", "--steps", "validate,split,train", "--set", "train.epochs=1", "--set", "train.early_stopping=null",
        "--set", "backends.local.devices=cpu")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_train_like_one(project: Path, strategy: str) -> None:
    reference = train_rows(reference_run(project, *ARGS))

    result = invoke("run", "pipeline.yaml", *ARGS, "--set", "backends.local.processes=2",
                    "--set", f"backends.local.strategy={strategy}")
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.output.splitlines()]
    assert any(e["event"] == "distributed" and f"2 processes (torchrun, {strategy.upper()})" in e["message"]
               for e in events)
    assert any(e["event"] == "progress" for e in events)  # rank 0's progress reaches the parent
    got = train_rows(next((project / "runs" / "tiny").iterdir()))
    assert [r["step"] for r in got] == [r["step"] for r in reference] == list(range(1, 7))
    for a, b in zip(got, reference):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3, (a, b)
        assert a["tokens"] == b["tokens"]
    run_dir = next((project / "runs" / "tiny").iterdir())
    assert (run_dir / "model" / "adapter_model.safetensors").exists()
    if strategy == "fsdp":  # rank 0 wrote whole weights gathered from the shards, not its own half
        from safetensors.torch import load_file

        ours = load_file(str(run_dir / "model" / "adapter_model.safetensors"))
        theirs = load_file(str(project / "reference" / "runs" / "tiny" / next(
            (project / "reference" / "runs" / "tiny").iterdir()).name / "model" / "adapter_model.safetensors"))
        assert ours.keys() == theirs.keys()
        assert all(ours[k].shape == theirs[k].shape and (ours[k] - theirs[k]).abs().max() < 1e-3 for k in ours)


def test_fsdp_refuses_what_it_cannot_shard(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", *ARGS, "--set", "backends.local.processes=2",
                    "--set", "backends.local.strategy=fsdp", "--set", "train.method=qlora")
    assert result.exit_code == 2 and "fsdp cannot shard bitsandbytes 4-bit weights" in result.stderr
    result = invoke("run", "pipeline.yaml", *ARGS, "--set", "backends.local.processes=2",
                    "--set", "backends.local.strategy=fsdp", "--set", "backends.local.dtype=float16")
    assert result.exit_code == 2 and "float16 is not supported with strategy: fsdp" in result.stderr


def test_a_batch_smaller_than_the_processes_is_refused(project: Path) -> None:
    result = invoke("run", "pipeline.yaml", *ARGS, "--set", "backends.local.processes=4", "--set", "train.batch_size=2")
    assert result.exit_code == 2 and "smaller than the 4 processes" in result.stderr


def test_a_process_left_without_examples_at_an_epochs_end_still_trains_like_one(project: Path) -> None:
    """48 examples in micro-batches of 5 end with one of 3: with 4 processes the 4th has none and runs a
    zero-weight stand-in, so DDP's collectives still meet and the losses stay those of one process."""
    args = (*ARGS, "--set", "train.batch_size=5")
    reference = train_rows(reference_run(project, *args))
    assert len(reference) == 10

    result = invoke("run", "pipeline.yaml", *args, "--set", "backends.local.processes=4")
    assert result.exit_code == 0, result.stderr
    got = train_rows(next((project / "runs" / "tiny").iterdir()))
    assert [r["step"] for r in got] == list(range(1, 11))
    for a, b in zip(got, reference):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3, (a, b)
        assert a["tokens"] == b["tokens"]


def test_accumulated_micro_batches_reduce_once_per_step_and_train_like_one(project: Path) -> None:
    """With gradient accumulation DDP's all-reduce runs on the step's last micro-batch only (no_sync before
    it): the sum is the same, so the losses are still those of one process."""
    args = (*ARGS, "--set", "train.batch_size=4", "--set", "train.gradient_accumulation_steps=2")
    reference = train_rows(reference_run(project, *args))
    result = invoke("run", "pipeline.yaml", *args, "--set", "backends.local.processes=2")
    assert result.exit_code == 0, result.stderr
    got = train_rows(next((project / "runs" / "tiny").iterdir()))
    assert [r["step"] for r in got] == [r["step"] for r in reference] and len(got) >= 5
    for a, b in zip(got, reference):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-3, (a, b)
        assert a["tokens"] == b["tokens"]


def test_each_rank_gets_a_balanced_share_of_every_micro_batch() -> None:
    """Longest first to the least-loaded rank: every row once, the same split on every rank, and token
    loads far closer than taking every other row (which gives one rank all the long examples here)."""
    from types import SimpleNamespace

    from ftp.backends.local.distributed import Dist

    rows = [SimpleNamespace(input_ids=[0] * n) for n in (900, 10, 850, 12, 800, 9, 780, 40)]
    shares = [Dist(rank=r, world=2).shard(rows) for r in range(2)]
    assert sorted(map(id, shares[0] + shares[1])) == sorted(map(id, rows))
    loads = [sum(len(r.input_ids) for r in share) for share in shares]
    strided = [sum(len(r.input_ids) for r in rows[k::2]) for k in range(2)]
    assert abs(loads[0] - loads[1]) <= 100 < abs(strided[0] - strided[1])
    assert [rows.index(r) for r in shares[0]] == sorted(rows.index(r) for r in shares[0])  # data order kept
    assert Dist(rank=0, world=1).shard(rows) is rows
    assert Dist(rank=3, world=4).shard(rows[:2]) == []  # fewer examples than ranks: a rank may get none
