"""Adapter weights in one contiguous buffer, stepped as one tensor.

LoRA on all linear layers of an 8B model is 448 small matrices. An optimiser, a norm clip and a
zero_grad over 448 tensors launch kernels (and for bitsandbytes' 8-bit AdamW, Python calls) per
tensor: 37 ms of a 578 ms QLoRA step on an H200. Over one flat tensor each is a handful of
kernels. Every adapter tensor becomes a view into the buffer, so PEFT, saving and export see the
tensors they always did. Gradients stay per tensor during backward (autograd allocates them only as
it reaches each layer, so a flat gradient buffer would add its size to the step's peak) and are
concatenated into one flat gradient just before the optimiser step, when activations are gone.

Used for adapters in a single process only: DDP and FSDP keep their own gradient buckets and shards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALIGN = 16  # elements: every view starts 64-byte aligned in fp32, as compiled kernels expect


@dataclass
class Trainable:
    """What the optimiser steps (``params``); ``views``: the model's tensors when they live in one buffer."""

    params: list[Any]
    views: list[Any] = field(default_factory=list)
    pads: list[Any] = field(default_factory=list)  # zeros that keep each view's gradient at its offset

    def gather(self) -> None:
        """The flat gradient from the per-tensor ones (one concatenation); nothing when not flattened."""
        if not self.views:
            return
        import torch

        parts = []
        for p, pad in zip(self.views, self.pads):
            parts.append(p.grad.reshape(-1) if p.grad is not None else torch.zeros_like(p).reshape(-1))
            if pad is not None:
                parts.append(pad)
        self.params[0].grad = torch.cat(parts)

    def zero_grad(self, optimiser: Any) -> None:
        optimiser.zero_grad(set_to_none=True)
        for p in self.views:
            p.grad = None


def flatten(params: list[Any]) -> Trainable:
    """One buffer for ``params`` when they share a dtype and device, else them as they are."""
    import torch

    if len(params) < 2 or len({(p.dtype, p.device) for p in params}) != 1:
        return Trainable(params)
    sizes = [p.numel() + (-p.numel() % ALIGN) for p in params]
    flat = torch.zeros(sum(sizes), dtype=params[0].dtype, device=params[0].device)
    pads = []
    offset = 0
    for p, size in zip(params, sizes):
        n = p.numel()
        flat[offset:offset + n].copy_(p.detach().reshape(-1))
        p.data = flat[offset:offset + n].view_as(p)
        pads.append(flat.new_zeros(size - n) if size > n else None)
        offset += size
    return Trainable([torch.nn.Parameter(flat)], list(params), pads)
