"""Whole optimiser steps replayed as CUDA graphs, so that a small model's step is bound by the GPU and not
by Python launching its kernels.

A step of Gemma 3 270M with LoRA on every linear layer is thousands of small kernels (adapters, six norms a
layer, attention); eager PyTorch spent about 200 ms of host time a step launching them for about 500 tokens
on an H200 (benchmarks/README.md, the whole-pipeline profile). A CUDA graph records one step's kernels
(forward, backward, gradient clipping and the fused AdamW update) and replays them in one call.

A graph's shapes and addresses are fixed, so:

- rows are rounded up to a multiple of ``LENGTH_MULTIPLE`` tokens by a filler example that is never trained
  (collate_packed's ``fill``), and the trained positions up to a multiple of ``POSITIONS_MULTIPLE`` by
  positions whose target is ignored: one graph per (row length, positions, offsets), a handful a run;
- rows packed to a token budget (``train.pack_tokens``, the large-model shape) would make a new shape at
  almost every step, so they take one: the budget's length, every position scored, and the offsets padded
  to a multiple of ``OFFSETS_MULTIPLE`` by empty examples. Scoring the untrained positions costs a few
  percent of a large model's step, a capture costs two steps;
- each graph reads its batch from its own input buffers, and the loss weight and learning rate from
  tensors filled before each replay (the optimiser's ``lr`` is a tensor while graphs run);
- torch's AdamW steps inside the graph (it reads the step count and learning rate from device tensors),
  so its state exists before the first capture: a fresh run's first step runs eagerly. An optimiser that
  reads them on the host (bitsandbytes' paged 8-bit AdamW, QLoRA's default) steps eagerly after each
  replay, from the gradients the graph left in its pool: with flat adapters (flat.py) that is one
  kernel call a step;
- the graphs share one memory pool: they never run at once and pass nothing to each other but the
  parameters and the optimiser state, which live outside it.

A capture that fails (an operation that waits for the host) switches graphs off for the rest of the run,
which goes on eagerly and says why: speed is lost, never the run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ftp.errors import UserError

from .attention import would_pack
from .chat import IGNORE, Encoded
from .modeling import Batch, collate_packed
from .precision import autocast

if TYPE_CHECKING:
    from ftp.config.settings import TrainSettings
    from ftp.types import TrainRequest

    from .loop import Loop
    from .modeling import Placement

LENGTH_MULTIPLE = 64  # tokens: rows of about 500 tokens fall in 3-4 lengths, with 6% padding on average
POSITIONS_MULTIPLE = 32  # trained positions: the loss's chunk on a GPU with a 262k vocabulary (loss.py)
MAX_GRAPHS = 32  # shapes beyond these run eagerly: each graph keeps its own input buffers
OFFSETS_MULTIPLE = 16  # a budget row's example offsets, padded by empty examples (length 0)
INPUTS = ("input_ids", "position_ids", "positions", "targets", "starts")


def refusal(loop: Loop, packed: bool, compiled: bool) -> str | None:
    """Why this run's steps cannot be captured (None: they can)."""
    return _refusal(loop.settings, loop.where.device, loop.dist.world, loop.scaler.is_enabled(), packed, compiled)


def _refusal(s: TrainSettings, device: str, world: int, scaling: bool, packed: bool, compiled: bool) -> str | None:
    reasons = [
        (not device.startswith("cuda"), "they need a CUDA device"),
        (world > 1, "several processes synchronise inside the step"),
        (s.gradient_accumulation_steps > 1, "train.gradient_accumulation_steps is above 1"),
        (not s.packing or not packed, "they need packed rows with mask-free attention (train.packing, "
                                      "backends.local.attention: auto, a model attention.py supports)"),
        (scaling, "float16 loss scaling decides on the host whether to step"),
        (bool(s.neftune_alpha), "train.neftune_alpha sizes its noise on the host"),
        (compiled, "the layers are compiled (backends.local.compile)"),
    ]
    return next((why for bad, why in reasons if bad), None)


def captured_optimiser(s: TrainSettings) -> bool:
    """Whether the optimiser's step goes into the graph: torch's AdamW can be captured, bitsandbytes'
    paged 8-bit AdamW passes its step count and learning rate to its kernel from the host."""
    return s.resolved_optimizer() == "adamw"


def _setting(request: TrainRequest) -> str | bool:
    return request.backend_settings.get("cuda_graphs", "auto")


def _switched_off(request: TrainRequest) -> bool:
    return _setting(request) in (False, "false")


def expected(request: TrainRequest, where: Placement, world: int, scaling: bool, model: Any) -> bool:
    """Whether ``auto`` will replay this run's steps as graphs (asked before the layers are compiled:
    compiling ``auto`` then stays off, training.py)."""
    if _switched_off(request):
        return False
    packed = request.backend_settings.get("attention", "auto") == "auto" and would_pack(model)
    return _refusal(request.settings, where.device, world, scaling, packed, compiled=False) is None


def begin(loop: Loop, packed: bool, compiled: bool) -> StepGraphs | None:
    """The run's graphs, per ``backends.local.cuda_graphs``: ``auto`` where they can run, silently eager
    elsewhere; ``true`` refuses a run they cannot serve."""
    setting = _setting(loop.request)
    if setting in (False, "false"):
        return None
    why = refusal(loop, packed, compiled)
    if why is not None and setting == "auto":
        return None
    if why is not None:
        raise UserError(f"backends.local.cuda_graphs: true, but the steps cannot be captured: {why}; "
                        "set it to auto or false")
    graphs = StepGraphs(loop)
    loop.pack_multiple = graphs.multiple
    rows = (f"rows padded to the {graphs.budget}-token budget" if graphs.budget
            else f"rows rounded up to {graphs.multiple} tokens")
    loop.ctx.reporter.event("cuda_graphs", message=f"steps replay as CUDA graphs, one per row shape ({rows})")
    return graphs


@dataclass
class Captured:
    graph: Any  # torch.cuda.CUDAGraph; None when not capturing (CPU tests run the same step eagerly)
    inputs: dict[str, Any]  # the buffers the graph reads its batch from
    longest: int
    grads: list[Any]  # the gradients a replay leaves, for an optimiser that steps outside the graph


class StepGraphs:
    """The run's graphs by shape, and the tensors they share."""

    def __init__(self, loop: Loop, capture: bool = True, max_graphs: int = MAX_GRAPHS) -> None:
        import torch

        self.loop, self.capture, self.max_graphs = loop, capture, max_graphs
        device = loop.where.device
        self.budget = loop.settings.resolved_pack_tokens()  # rows of one fixed shape (the module's docstring)
        self.multiple = self.budget or loop.pack_multiple or LENGTH_MULTIPLE
        self.weight = torch.zeros((), device=device)  # 1 / trained tokens of the step
        self.loss = torch.zeros((), device=device)  # the replayed step's summed loss
        self.graphs: dict[tuple[int, ...], Captured] = {}  # by (row length, positions, offsets)
        self.shapes: list[tuple[int, ...]] = []  # the graphs' shapes, once closed
        self.pool: Any = None
        self.stream: Any = torch.cuda.Stream() if capture else None
        self.broken: str | None = None
        self.replayed = self.eager = 0
        self.capture_s = 0.0
        self.inside = captured_optimiser(loop.settings)
        for group in loop.parts.optimiser.param_groups if self.inside else ():
            if not isinstance(group["lr"], torch.Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)  # Loop.step fills it

    def batch(self, rows: Sequence[Encoded]) -> Batch:
        """The rows as one packed row of a graph's shape (on the CPU; a graph's buffers take it)."""
        import torch

        pad = self.loop.fmt.tokenizer.pad_token_id
        b = collate_packed(list(rows), "cpu", pad, self.multiple, fill=not self.budget)
        length = b.input_ids.size(1)
        extra = -b.positions.numel() % (length if self.budget else POSITIONS_MULTIPLE)
        positions = torch.cat([b.positions, torch.full((extra,), length - 1, dtype=torch.long)])
        targets = torch.cat([b.targets, torch.full((1, extra), IGNORE, dtype=torch.long)], dim=1)
        starts = b.starts
        if self.budget:  # empty examples at the end: offsets repeat the row's length
            starts = torch.cat([starts, torch.full((-starts.numel() % OFFSETS_MULTIPLE,), length, dtype=starts.dtype)])
        return Batch(b.input_ids, None, b.labels, b.tokens, b.position_ids, positions, targets, b.trained,
                     starts, length)

    def step(self, rows: Sequence[Encoded], weight: float) -> tuple[Any, int] | None:
        """One whole optimiser step over ``rows``: (its summed loss on the device, valid until the next
        step; its tokens), or None when this step must run eagerly."""
        if self.broken is not None:
            return None
        b = self.batch(rows)
        key = (b.input_ids.size(1), b.positions.numel(), b.starts.numel())
        entry = self.graphs.get(key)
        if entry is None:
            if len(self.graphs) >= self.max_graphs or (self.inside and not self.loop.parts.optimiser.state):
                self.eager += 1
                return None
            entry = self._capture(key, b)
            if entry is None:
                self.eager += 1
                return None
        for name, buffer in entry.inputs.items():
            buffer.copy_(getattr(b, name), non_blocking=True)
        self.weight.fill_(weight)
        trainable, optimiser = self.loop.parts.trainable, self.loop.parts.optimiser
        if entry.graph is not None:
            entry.graph.replay()
            if not self.inside:
                for p, grad in zip(trainable.params, entry.grads):
                    p.grad = grad
        else:
            self._body(entry.inputs, entry.longest)
        if not self.inside:
            optimiser.step()
        if entry.graph is None or not self.inside:
            trainable.zero_grad(optimiser)
        self.replayed += 1
        return self.loss, b.tokens

    def _body(self, inputs: dict[str, Any], longest: int, update: bool = True) -> None:
        """What a graph records: the step from its buffers to the clipped gradients and, for an optimiser
        that can be captured, the updated weights (``update``: False for a warm-up, which only runs forward
        and backward)."""
        import torch

        parts = self.loop.parts
        with autocast(self.loop.where.device, self.loop.where.dtype_name, cache=False):
            loss = parts.model(inputs["input_ids"], None, inputs["position_ids"], inputs["positions"],
                               inputs["targets"], inputs["starts"], longest)
        (loss * self.weight).backward()
        if update:
            parts.trainable.gather()
            torch.nn.utils.clip_grad_norm_(parts.trainable.params, 1.0)
            if self.inside:
                parts.optimiser.step()
            self.loss.copy_(loss.detach())

    def _capture(self, key: tuple[int, ...], b: Batch) -> Captured | None:
        """A new shape's graph: a warm-up forward and backward on the capture stream (lazy kernel and
        workspace set-up must not happen inside a capture; its random draws are given back), then the
        capture. None, and graphs off for the run, when the step cannot be captured."""
        import torch

        start = time.perf_counter()
        parts = self.loop.parts
        inputs = {name: getattr(b, name).to(self.loop.where.device) for name in INPUTS}
        graph, grads = None, []
        try:
            if self.capture:
                rng = torch.cuda.get_rng_state()
                self.stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(self.stream):
                    self._body(inputs, b.longest, update=False)
                torch.cuda.current_stream().wait_stream(self.stream)
                parts.trainable.zero_grad(parts.optimiser)
                torch.cuda.set_rng_state(rng)
                graph = torch.cuda.CUDAGraph()
                groups = parts.optimiser.param_groups if self.inside else []
                for group in groups:
                    group["capturable"] = True
                try:
                    with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                        self._body(inputs, b.longest)
                    grads = [p.grad for p in parts.trainable.params]  # kept: the pool must not reuse them
                finally:
                    for group in groups:
                        group["capturable"] = False
                    parts.trainable.zero_grad(parts.optimiser)
                self.pool = graph.pool() if self.pool is None else self.pool
        except RuntimeError as exc:
            parts.trainable.zero_grad(parts.optimiser)
            self.broken = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            self.loop.ctx.reporter.event("warning", message=f"CUDA graphs off from step {self.loop.st.step + 1}: "
                                                            f"the step could not be captured ({self.broken}); "
                                                            "the run goes on eagerly")
            return None
        entry = Captured(graph, inputs, b.longest, grads)
        self.graphs[key] = entry
        self.capture_s += time.perf_counter() - start
        return entry

    def close(self) -> None:
        """Free the graphs and their pool, give the optimiser a plain ``lr`` again, and say what ran how."""
        for group in self.loop.parts.optimiser.param_groups if self.inside else ():
            group["lr"] = float(group["lr"])
        self.shapes, shapes = list(self.graphs), len(self.graphs)
        self.graphs.clear()
        self.pool = None
        self.loop.ctx.reporter.event(
            "cuda_graphs", message=f"{self.replayed} steps replayed from {shapes} CUDA graphs (capturing took "
                                   f"{self.capture_s:.1f} s), {self.eager} ran eagerly")
