"""Mixed precision for adapters: fp32 master weights, matmuls in the model's bf16/fp16.

PEFT keeps LoRA weights in fp32 (small, and Adam needs the precision) and, left alone, casts each
layer's input up to fp32 to match them: every adapter matmul then runs in fp32 without tensor cores
(the profile of an 8B QLoRA step on an H200 showed them as ``sm80_xmma_gemm_f32…ffma`` kernels) and
keeps an fp32 copy of its input. Under autocast the matmuls run in the compute dtype while the
weights, their gradients and the optimiser stay fp32: what the Hugging Face Trainer does with
``bf16=True``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from ftp.errors import UserError


def autocast(device: str, dtype_name: str, cache: bool = True) -> Any:
    """An autocast context for one forward pass (a new one each time), or nothing in fp32. ``cache``: False
    inside a CUDA graph capture, whose replays must redo the casts the cache would keep from the capture."""
    if dtype_name == "float32":
        return nullcontext()
    import torch

    return torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype_name), cache_enabled=cache)


def check_precision(method: str, dtype_name: str) -> None:
    """What float16 cannot train safely, refused by the trainer before the model loads or any process starts."""
    if dtype_name == "float16" and method == "full":
        raise UserError("backends.local.dtype: float16 with train.method: full would train float16 weights without "
                        "float32 master copies; use bfloat16 (GPUs from Ampere on) or float32")


def grad_scaler(device: str, dtype_name: str) -> Any:
    """Loss scaling for float16, whose 5-bit exponent flushes small gradients to zero without it. bf16 and
    fp32 need none: the scaler is then disabled and passes everything through unchanged."""
    import torch

    return torch.amp.GradScaler(device.split(":")[0], enabled=dtype_name == "float16")


@contextmanager
def adapters_follow_autocast(model: Any, dtype_name: str) -> Iterator[None]:
    """Stop PEFT from casting inputs up to the adapters' fp32 while training runs under autocast;
    restored afterwards, since generation runs without autocast and needs the cast."""
    layers = [m for m in model.modules() if hasattr(m, "cast_input_dtype_enabled")] if dtype_name != "float32" else []
    saved = [m.cast_input_dtype_enabled for m in layers]
    for m in layers:
        m.cast_input_dtype_enabled = False
    try:
        yield
    finally:
        for m, value in zip(layers, saved):
            m.cast_input_dtype_enabled = value
