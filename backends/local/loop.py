"""The step machinery of local training: the run's schedule, one optimiser step over its micro-batches,
and the periodic checkpoint that a killed run resumes from.

``Loop`` holds what the steps share and change (the checkpoint's ``LoopState``, the models, the
optimiser, the loss scaler). training.py builds its parts, drives it, validates between its steps and
keeps the model it leaves.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ftp.config.settings import TrainSettings
from ftp.errors import StepFailed
from ftp.types import StepContext, TrainRequest

from . import checkpoint
from .chat import ChatFormat, Encoded
from .distributed import Dist
from .flat import Trainable
from .modeling import Placement, collate, collate_packed
from .precision import autocast
from .schedule import epoch_order, examples_to_take, lr_at, micro_batches_per_epoch

@dataclass(frozen=True)
class Data:
    """The encoded examples: views of the token cache, so they are passed around, never copied."""

    train: Sequence[Encoded]
    validation: Sequence[Encoded]


@dataclass(frozen=True)
class Parts:
    """``core`` is the model that is saved and evaluated; ``model`` the loss module around it (wrapped
    for DDP or FSDP), which steps run through so that the wrapper sees the work it synchronises."""

    core: Any
    model: Any
    trainable: Trainable
    optimiser: Any


@dataclass(frozen=True)
class Schedule:
    """The run's length and rhythm, fixed before the first step by the settings and the data alone, so
    that a resumed run computes the same numbers as the attempt it continues."""

    steps_per_epoch: int
    total: int
    warmup: int
    eval_every: int
    save_every: int

    @classmethod
    def of(cls, settings: TrainSettings, rows: Sequence[Encoded]) -> Schedule:
        micro = micro_batches_per_epoch(rows, settings.seed, settings.batch_size, settings.resolved_pack_tokens())
        steps_per_epoch = math.ceil(micro / settings.gradient_accumulation_steps)
        total = int(settings.max_steps or math.ceil(steps_per_epoch * settings.epochs))
        eval_every = int(settings.eval_steps or max(1, steps_per_epoch // 2))
        return cls(steps_per_epoch=steps_per_epoch, total=total, warmup=int(total * settings.warmup_ratio),
                   eval_every=eval_every, save_every=int(settings.checkpoint_steps or eval_every))


class Phases:
    """Seconds per phase of a training run (``TrainResult.phases``): where the time besides the optimiser
    steps goes (tokenizer, data, model, validation, saving), which a tokens-per-second figure hides."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}


class Loop:
    """The loop's state (``st``: what a checkpoint saves) and everything a step touches."""

    def __init__(self, request: TrainRequest, ctx: StepContext, fmt: ChatFormat, where: Placement, dist: Dist,
                 scaler: Any, parts: Parts, data: Data, plan: Schedule, meta: dict[str, Any],
                 phases: Phases | None = None) -> None:
        self.request, self.settings, self.ctx, self.fmt = request, request.settings, ctx, fmt
        self.where, self.dist, self.scaler, self.parts, self.data, self.plan = where, dist, scaler, parts, data, plan
        self.meta = meta  # what the saved model's META_FILE records, besides its step
        self.ckpt_dir = request.output_dir.parent / "checkpoint"
        self.pack_multiple = int(request.backend_settings.get("pack_multiple", 0))
        self.st = checkpoint.LoopState(fingerprint=checkpoint.fingerprint(request))
        self.start = time.perf_counter()
        self.task: Any = _Silent()
        self.phases = phases or Phases()
        self.tokenizer_files: list[str] = []  # written into the saved model by this attempt (training.save_model)
        self.graphs: Any = None  # graphs.StepGraphs while the steps replay as CUDA graphs
        self.lr = 0.0  # this step's learning rate (the optimiser's may be a device tensor: graphs.py)

    def resume(self) -> None:
        """Continue from the checkpoint when it was made for this very request (weights, optimiser, RNG,
        data position, loss scale), logging its metrics rows again: the attempt's log starts empty."""
        st, parts = self.st, self.parts
        self.st = checkpoint.load(self.ckpt_dir, st.fingerprint, parts.core, parts.optimiser, self.dist.sharded) or st
        if self.dist.world > 1 and self.dist.total(self.st.step)[0] != self.st.step * self.dist.world:
            # only rank 0 writes checkpoints: hosts that do not share node 0's run directory find none
            raise StepFailed("train", f"the processes found different checkpoints (this one: step {self.st.step}); "
                                      "a run on several hosts resumes only when every host sees node 0's checkpoint "
                                      "(a shared run directory); start the run again instead")
        if self.st.loss_scale:
            self.scaler.load_state_dict(self.st.loss_scale)
        if self.st.step:
            for row in self.st.rows:
                self.ctx.log_metrics(row)
            self.ctx.reporter.event("resumed", message=f"resumed from the checkpoint at step {self.st.step} "
                                                       f"of {self.plan.total}")

    def begin(self) -> None:
        """Start the clock where the resumed attempt stopped it, and the progress display (first rank only)."""
        self.start = time.perf_counter() - self.st.elapsed
        self.task = self.ctx.reporter.progress("train", self.plan.total) if self.dist.main else _Silent()

    def step(self) -> None:
        """One optimiser step over its micro-batches, each shared out between the ranks."""
        st, dist = self.st, self.dist
        step = st.step
        self.lr = lr_at(step, self.plan.total, self.plan.warmup, self.settings.resolved_learning_rate(),
                        self.settings.scheduler)
        for group in self.parts.optimiser.param_groups:
            if hasattr(group["lr"], "fill_"):
                group["lr"].fill_(self.lr)  # the tensor CUDA graphs read: filled, never replaced
            else:
                group["lr"] = self.lr
        shares = [(dist.shard(rows), rows) for rows in self.micro_batches()]  # this rank's share of each
        n_trained = int(dist.total(sum(r.trained_tokens for mine, _ in shares for r in mine))[0])
        replayed = self.graphs.step(shares[0][0], 1 / max(1, n_trained)) if self.graphs is not None else None
        if replayed is not None:
            step_loss, step_tokens = replayed
        else:
            step_loss, step_tokens = self.backward(shares, n_trained)
            self.optimiser_step()
        loss_sum, tokens_sum = dist.total(float(step_loss), step_tokens)  # all ranks, one reduction per step
        st.step = step + 1
        st.trained_tokens += n_trained
        st.tokens_seen += int(tokens_sum)
        self.record(loss_sum / max(1, n_trained))

    def micro_batches(self) -> list[list[Encoded]]:
        """The step's micro-batches in the epoch's shuffled order; an epoch that runs out starts the next."""
        st, rows, settings = self.st, self.data.train, self.settings
        micro = []
        for _ in range(settings.gradient_accumulation_steps):
            if st.cursor >= len(st.order):
                st.order = epoch_order(len(rows), settings.seed, st.epoch)
                st.cursor, st.epoch = 0, st.epoch + 1
            take = examples_to_take(rows, st.order, st.cursor, settings.batch_size, settings.resolved_pack_tokens())
            micro.append([rows[i] for i in st.order[st.cursor:st.cursor + take]])
            st.cursor += take
        return micro

    def backward(self, shares: list[tuple[list[Encoded], list[Encoded]]], n_trained: int) -> tuple[Any, int]:
        """Accumulate the gradients of this rank's shares; (their summed loss, their tokens)."""
        import torch

        from .loss import answer_loss

        device, pad_id = self.where.device, self.fmt.tokenizer.pad_token_id
        step_loss, step_tokens = torch.zeros((), device=device), 0
        for i, (mine, whole) in enumerate(shares):
            # An epoch's last micro-batch can hold fewer examples than there are processes. A rank with
            # none still runs forward and backward (DDP and FSDP synchronise in them), on a stand-in
            # example whose loss counts zero.
            rows, weight = (mine, self.dist.world / max(1, n_trained)) if mine else (whole[:1], 0.0)
            b = (collate_packed(rows, device, pad_id, self.pack_multiple) if self.settings.packing
                 else collate(rows, pad_id, device))
            with self.dist.syncing(self.parts.model, last=i == len(shares) - 1):
                with self.amp():
                    loss, _ = answer_loss(self.parts.model, b)
                self.scaler.scale(loss * weight).backward()  # DDP averages over ranks: world / n_trained: a sum
            if mine:
                step_loss += loss.detach()  # no .item(): the GPU keeps working while the next batch is built
                step_tokens += b.tokens
        return step_loss, step_tokens

    def optimiser_step(self) -> None:
        """Clip the unscaled gradients and step; float16's scaler skips a step whose gradients overflowed
        (the scale then shrinks)."""
        import torch

        trainable, optimiser, scaler = self.parts.trainable, self.parts.optimiser, self.scaler
        trainable.gather()
        scaler.unscale_(optimiser)
        torch.nn.utils.clip_grad_norm_(trainable.params, 1.0)
        scaler.step(optimiser)
        scaler.update()
        trainable.zero_grad(optimiser)

    def record(self, train_loss: float) -> None:
        st, scaler = self.st, self.scaler
        elapsed = time.perf_counter() - self.start
        self.log({"step": st.step, "epoch": round(st.epoch - 1 + st.cursor / len(self.data.train), 3),
                  "train_loss": train_loss, "lr": self.lr, "tokens": st.tokens_seen,
                  "tokens_per_s": st.tokens_seen / max(elapsed, 1e-9),
                  **({"loss_scale": scaler.get_scale()} if scaler.is_enabled() else {})})
        st.train_curve.append([st.step, train_loss])
        self.task.update(st.step, loss=round(train_loss, 4), tok_s=round(st.tokens_seen / max(elapsed, 1e-9)))

    def save_checkpoint(self) -> None:
        """Every ``save_every`` steps but the last, what a killed run resumes from."""
        st = self.st
        if st.step % self.plan.save_every != 0 or st.step >= self.plan.total:
            return
        with self.phases("checkpoint"):
            st.elapsed = time.perf_counter() - self.start
            st.loss_scale = self.scaler.state_dict()
            saved = self.dist.checkpoint_state(self.parts.core, self.parts.optimiser)
            if saved is not None:
                checkpoint.save(self.ckpt_dir, st, *saved)
            self.dist.barrier()

    def log(self, row: dict[str, Any]) -> None:
        self.st.rows.append(row)
        if self.dist.main:
            self.ctx.log_metrics(row)

    def amp(self) -> Any:
        """A fresh autocast context for one forward pass (they are not reusable)."""
        return autocast(self.where.device, self.where.dtype_name)


class _Silent:
    """The progress display of a rank that does not report (only the first does)."""

    def update(self, completed: int, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass
