"""The mechanism behind the training-time forwards (norms.py, gated_mlp.py, fused_adapters.py): a
replacement forward set as an instance attribute on every module of a class that qualifies, removed
when the block ends, so evaluation and export see the library's own modules."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Forward = Callable[..., Any]


def wanted(setting: str | bool, device: str) -> bool:
    """``auto``: on a GPU, where the replacement pays; a CPU keeps the library's modules."""
    return str(device).startswith("cuda") if setting == "auto" else bool(setting)


def same_output(expected: Any, got: Any, float32_tolerance: float) -> bool:
    """Whether a replacement's output on a probe is the module's own, to the rounding of its dtype (two
    steps of the last bit in bfloat16 / float16)."""
    import torch

    if expected.dtype != got.dtype or expected.shape != got.shape:
        return False
    tolerance = float32_tolerance if got.dtype == torch.float32 else 2 * torch.finfo(got.dtype).eps
    return bool(torch.allclose(got.float(), expected.float(), rtol=tolerance, atol=tolerance))


@contextmanager
def per_class(model: Any, choose: Callable[[Any], Forward | None]) -> Iterator[int]:
    """While the block runs, every module of ``model`` whose class ``choose`` gives a forward for (asked
    once per class, of its first module) runs that forward; yields how many do."""
    checked: dict[type, Forward | None] = {}
    replaced = []
    for module in model.modules():
        kind = type(module)
        if kind not in checked:
            checked[kind] = choose(module)
        forward = checked[kind]
        if forward is not None and "forward" not in vars(module):
            module.forward = types.MethodType(forward, module)
            replaced.append(module)
    try:
        yield len(replaced)
    finally:
        for module in replaced:
            del module.forward
