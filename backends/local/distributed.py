"""Training on several GPUs (or, for tests, several CPU processes) with PyTorch DDP or FSDP, launched by torchrun.

The train step writes the request to the run directory and starts ``torchrun --nproc_per_node N`` on
``worker.py``. Every rank trains on its share of each micro-batch; gradients are averaged by DDP and the
loss is normalised by the answer tokens of all ranks, so the result equals one process training the
whole batch. Rank 0 alone writes metrics, checkpoints and the model, and prints its events as JSON
lines, which the parent relays to its own progress display.

With ``strategy: fsdp`` (FSDP2's ``fully_shard``, one unit per decoder layer) each rank holds a shard
of every weight, gradient and optimiser state instead of a whole copy: for models whose full copy
does not fit one GPU. Saving then gathers the trainable weights and the optimiser state on every
rank (collectives) before rank 0 writes them, in the same files as a single process would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ftp.errors import HandedOff, StepFailed, UserError
from ftp.types import StepContext, TrainRequest, TrainResult

from . import checkpoint

RESULT = "result.json"
ERROR_PREFIX = "error-rank-"  # a rank's FtpError message (error-rank-N.txt), for the parent to show


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    strategy: str = "ddp"

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.world > 1 and self.strategy == "fsdp"

    @classmethod
    def from_env(cls, strategy: str = "ddp") -> "Dist":
        return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                   int(os.environ.get("LOCAL_RANK", 0)), strategy)

    def init(self, device: str) -> None:
        import torch.distributed as td

        if self.world > 1 and not td.is_initialized():
            td.init_process_group("nccl" if device.startswith("cuda") else "gloo")

    def shard(self, rows: list[Any]) -> list[Any]:
        """This rank's examples of a micro-batch, balanced by length: longest first, each to the rank with
        the fewest tokens so far (ties to the lowest rank), so no rank waits at the all-reduce for one
        that got the long examples. Every rank computes the same split; the result does not depend on it
        (the loss is a sum over all ranks' answer tokens)."""
        if self.world == 1:
            return rows
        load = [0] * self.world
        owner: dict[int, int] = {}
        for i in sorted(range(len(rows)), key=lambda i: (-_length(rows[i]), i)):
            rank = min(range(self.world), key=lambda r: (load[r], r))
            owner[i] = rank
            load[rank] += _length(rows[i])
        return [row for i, row in enumerate(rows) if owner[i] == self.rank]

    def syncing(self, model: Any, last: bool) -> Any:
        """A context for one micro-batch's backward: under DDP gradients are all-reduced on the step's last
        micro-batch only (``no_sync`` before it), not once per micro-batch. FSDP keeps reducing each one:
        skipping would hold every unsharded gradient until the last, the memory FSDP is there to save."""
        from contextlib import nullcontext

        if self.world == 1 or self.sharded or last:
            return nullcontext()
        return model.no_sync()

    def total(self, *values: float) -> list[float]:
        """The sums of ``values`` over all ranks, in one reduction (each one is a device sync)."""
        if self.world == 1:
            return [float(v) for v in values]
        import torch
        import torch.distributed as td

        t = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if td.get_backend() == "nccl":
            t = t.cuda()
        td.all_reduce(t)
        return t.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def wrap(self, model: Any, device: str) -> Any:
        """DDP around the loss module, or FSDP units per decoder layer plus one for the rest."""
        if self.world == 1:
            return model
        if self.sharded:
            from torch.distributed.fsdp import fully_shard

            from .modeling import decoder_layers

            for layer in decoder_layers(model.lm):
                fully_shard(layer)
            fully_shard(model)
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if device.startswith("cuda") else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def full_trainable(self, model: Any) -> dict[str, Any] | None:
        """The whole trainable weights on every rank when they are sharded (all ranks must call), else None."""
        if not self.sharded:
            return None
        from torch.distributed.tensor import DTensor

        return {name: (p.full_tensor() if isinstance(p, DTensor) else p).detach().cpu().contiguous()
                for name, p in model.named_parameters() if p.requires_grad}

    def checkpoint_state(self, model: Any, optimiser: Any) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """What a checkpoint holds: the trainable weights and the optimiser state, whole (gathered from the
        shards under FSDP, so every rank must call). None on the ranks that do not write."""
        if not self.sharded:
            return (checkpoint.trainable_state(model), optimiser.state_dict()) if self.main else None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        weights = self.full_trainable(model)
        assert weights is not None  # sharded: always gathered
        state = get_optimizer_state_dict(model, optimiser, options=StateDictOptions(full_state_dict=True,
                                                                                    cpu_offload=True))
        return (weights, state) if self.main else None


def _length(row: Any) -> int:
    return len(getattr(row, "input_ids", ()) or ())


def check_strategy(request: TrainRequest) -> None:
    """What FSDP cannot shard here, refused before any process starts."""
    if request.backend_settings.get("strategy", "ddp") != "fsdp":
        return
    if request.method == "qlora":
        raise UserError("backends.local.strategy: fsdp cannot shard bitsandbytes 4-bit weights; use strategy: ddp "
                        "with train.method: qlora, or train.method: lora with fsdp")
    if request.settings.resolved_optimizer() == "paged_adamw_8bit":
        raise UserError("backends.local.strategy: fsdp works with train.optimizer: adamw, not paged_adamw_8bit")
    if request.backend_settings.get("dtype") == "float16":
        raise UserError("backends.local.dtype: float16 is not supported with strategy: fsdp (its sharded gradients "
                        "need a sharded loss scaler); use dtype: bfloat16, or strategy: ddp")


def world_size(settings: dict[str, Any]) -> int:
    """How many processes: ``devices: N`` GPUs, all visible GPUs for ``auto``, or ``processes`` on a CPU."""
    devices = settings.get("devices", "auto")
    if isinstance(devices, int):
        return devices
    if devices == "cpu":
        return int(settings.get("processes", 1))
    import torch

    return torch.cuda.device_count() if devices == "auto" and torch.cuda.device_count() > 1 else 1


@dataclass(frozen=True)
class Nodes:
    """The hosts of a run (``backends.local.nodes``): how many, which one this is, where node 0 listens."""

    count: int = 1
    rank: int = 0
    endpoint: str = ""

    def rendezvous(self) -> list[str]:
        """torchrun's options: one host on its own, or the static rendezvous at node 0's endpoint, where node
        ranks are the given ones, so node 0's first process is rank 0, which writes the model there."""
        if self.count == 1:
            return ["--standalone"]
        return [f"--nnodes={self.count}", f"--node-rank={self.rank}", "--rdzv-backend=static",
                f"--rdzv-endpoint={self.endpoint}", "--max-restarts=0"]


def nodes_of(settings: dict[str, Any]) -> Nodes:
    """``backends.local.nodes`` checked: a rank for this host (given, or from FTP_NODE_RANK / SLURM_NODEID)
    and an endpoint when there is more than one host."""
    raw = settings.get("nodes") or {}
    count = int(raw.get("count", 1))
    if count == 1:
        return Nodes()
    rank: Any = raw.get("rank", "auto")
    if rank == "auto":
        found = next(((k, os.environ[k]) for k in ("FTP_NODE_RANK", "SLURM_NODEID") if os.environ.get(k)), None)
        if found is None:
            raise UserError(f"backends.local.nodes.rank: this host's rank among the {count} nodes is not known; set "
                            "it (--set backends.local.nodes.rank=N) or the environment's FTP_NODE_RANK (Slurm sets "
                            "SLURM_NODEID)")
        if not found[1].isdigit():
            raise UserError(f"backends.local.nodes.rank: {found[0]}={found[1]!r} is not a node rank (0, 1, ...)")
        rank = int(found[1])
    if not 0 <= int(rank) < count:
        raise UserError(f"backends.local.nodes.rank: {rank} is not one of the {count} nodes' ranks (0 to {count - 1})")
    endpoint = str(raw.get("endpoint") or "")
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"backends.local.nodes.endpoint: {endpoint or 'missing'}; give node 0's host:port, reachable "
                        "from every node (e.g. node0.cluster:29500)")
    return Nodes(count, int(rank), endpoint)


def launch(request: TrainRequest, ctx: StepContext, per_node: int, nodes: Nodes = Nodes()) -> TrainResult:
    """Run training under torchrun and relay rank 0's events; the model stays on disk. On a node other than
    node 0 the step ends when training does: node 0 has the model (``HandedOff``)."""
    check_strategy(request)
    world = per_node * nodes.count
    if request.settings.resolved_pack_tokens():
        raise UserError(f"train.pack_tokens packs micro-batches for one process; with {world} processes use "
                        "train.batch_size (examples per micro-batch, shared out between the processes)")
    if request.settings.batch_size < world:
        raise UserError(f"train.batch_size {request.settings.batch_size} is smaller than the {world} "
                        "processes; every process needs at least one example per micro-batch")
    work = request.output_dir.parent / "distributed"
    work.mkdir(parents=True, exist_ok=True)
    (work / RESULT).unlink(missing_ok=True)
    for stale in work.glob(f"{ERROR_PREFIX}*.txt"):
        stale.unlink()
    (work / "request.json").write_text(request.model_dump_json(), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", *nodes.rendezvous(), f"--nproc_per_node={per_node}",
               "-m", "ftp.backends.local.worker", str(work), str(ctx.run_dir / "metrics.jsonl")]
    strategy = str(request.backend_settings.get("strategy", "ddp")).upper()
    where = "" if nodes.count == 1 else f", {nodes.count} nodes x {per_node}, this is node {nodes.rank}"
    ctx.reporter.event("distributed", message=f"training on {world} processes (torchrun, {strategy}{where})")
    log = (work / "torchrun.log").open("w", encoding="utf-8")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=die_with_parent)
    task = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            event = _event(line)
            if event is None:
                continue
            kind = event.pop("event")
            if kind == "progress":
                task = task or ctx.reporter.progress("train", int(event.get("total", 0)))
                task.update(int(event.pop("completed")), **{k: v for k, v in event.items() if k not in ("task", "total")})
            else:
                ctx.reporter.event(kind, **{k: v for k, v in event.items() if k != "time"})
        proc.wait()
    except BaseException:
        proc.kill()
        raise
    finally:
        if task is not None:
            task.close()
        log.close()
    if proc.returncode == 0 and nodes.rank != 0:
        raise HandedOff(f"node {nodes.rank} of {nodes.count} trained its share; node 0 wrote the model and carries on "
                        "with the pipeline", {"node_rank": nodes.rank, "nodes": nodes.count})
    said = sorted(work.glob(f"{ERROR_PREFIX}*.txt"), key=lambda f: int(f.stem.rsplit("-", 1)[1]))
    if proc.returncode != 0 and said:  # a rank's own error: what went wrong, not torchrun's summary
        message = said[0].read_text(encoding="utf-8").removeprefix("train: ")
        raise StepFailed("train", f"{message} (log of all processes: {work / 'torchrun.log'})")
    if proc.returncode != 0 or not (work / RESULT).exists():
        tail = (work / "torchrun.log").read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise StepFailed("train", f"distributed training failed (exit {proc.returncode}): {' | '.join(tail)} "
                                  f"(full log: {work / 'torchrun.log'})")
    return TrainResult.model_validate_json((work / RESULT).read_text(encoding="utf-8"))


def die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies.

    torchrun starts its workers in sessions of their own, so killing ftp's process group (a crash, a
    kill -9, a machine's OOM killer) would leave them training on, writing into a run that a
    ``--resume`` is about to continue, and holding the GPUs. Set in torchrun (parent: ftp) and in each
    worker (parent: torchrun), a death anywhere up the chain ends the chain."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def _event(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "event" in data else None
