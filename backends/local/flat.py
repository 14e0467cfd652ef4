"""Adapter weights and their gradients in one contiguous buffer each, stepped as one tensor.

LoRA on all linear layers of an 8B model is 448 small matrices. An optimiser, a norm clip and a
zero_grad over 448 tensors launch kernels (and for bitsandbytes' 8-bit AdamW, Python calls) per
tensor: 37 ms of a 578 ms QLoRA step on an H200. Over one flat tensor each is a handful of
kernels. Every adapter tensor becomes a view into the buffer, so PEFT, saving and export see the
tensors they always did; gradients accumulate in place into views of the gradient buffer.

Used for adapters in a single process only: DDP and FSDP keep their own gradient buckets and shards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ALIGN = 16  # elements: every view starts 64-byte aligned in fp32, as compiled kernels expect


@dataclass
class Trainable:
    """What the optimiser steps (``params``) and how gradients are cleared."""

    params: list[Any]
    grad: Any = None  # the flat gradient buffer, when flattened

    def zero_grad(self, optimiser: Any) -> None:
        if self.grad is None:
            optimiser.zero_grad(set_to_none=True)
        else:
            self.grad.zero_()  # in place: the views the adapters accumulate into must stay


def flatten(params: list[Any]) -> Trainable:
    """One buffer for ``params`` when they share a dtype and device, else them as they are."""
    import torch

    if len(params) < 2 or len({(p.dtype, p.device) for p in params}) != 1:
        return Trainable(params)
    sizes = [p.numel() + (-p.numel() % ALIGN) for p in params]
    flat = torch.zeros(sum(sizes), dtype=params[0].dtype, device=params[0].device)
    grad = torch.zeros_like(flat)
    offset = 0
    for p, size in zip(params, sizes):
        n = p.numel()
        flat[offset:offset + n].copy_(p.detach().reshape(-1))
        p.data = flat[offset:offset + n].view_as(p)
        p.grad = grad[offset:offset + n].view_as(p)
        offset += size
    whole = torch.nn.Parameter(flat)
    whole.grad = grad
    return Trainable([whole], grad)
