"""RMSNorm through PyTorch's one-call ``rms_norm`` while training runs.

transformers writes each model's RMSNorm as eight to ten element-wise operations (cast, square, mean,
add, rsqrt, multiply, cast, weight), each a kernel launch and an autograd node. A small model on a GPU is
bound by launching them: Gemma 3 270M runs 108 norms per forward (six per layer), so about 2,000 of the
6,500 kernels of a LoRA step are normalisation. ``torch.nn.functional.rms_norm`` does the same arithmetic
in one call (a fused kernel on CUDA) and one autograd node.

Two conventions exist, and a norm keeps its own:

- **Llama** (Llama, Qwen 2/3, Mistral, ...): normalise in float32, cast back to the input's dtype, then
  multiply by ``weight``;
- **Gemma** (Gemma, Gemma 3): normalise and multiply by ``1 + weight`` in float32, then cast.

A class is taken only after its replacement has given the original's output on a probe of the module's
own dtype and device, so a transformers release that changes a norm keeps the original rather than
training a different model. Evaluation and export see the original modules: the replacement is an
instance attribute removed when the block ends.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


def _llama(self: Any, x: Any) -> Any:
    from torch.nn.functional import rms_norm

    return self.weight * rms_norm(x, (x.shape[-1],), None, self.variance_epsilon)


def _gemma(self: Any, x: Any) -> Any:
    from torch.nn.functional import rms_norm

    return rms_norm(x.float(), (x.shape[-1],), 1.0 + self.weight.float(), self.eps).type_as(x)


def convention(module: Any) -> Callable[[Any, Any], Any] | None:
    """The replacement forward for an RMSNorm of a known convention (by its attributes and class name)."""
    name = type(module).__name__
    if not name.endswith("RMSNorm") or getattr(module, "weight", None) is None or module.weight.dim() != 1:
        return None
    if name.startswith("Gemma") and isinstance(getattr(module, "eps", None), float):
        return _gemma
    if isinstance(getattr(module, "variance_epsilon", None), float):
        return _llama
    return None


def agrees(module: Any, forward: Callable[[Any, Any], Any]) -> bool:
    """Whether ``forward`` gives ``module``'s own output on a probe in its dtype and on its device, to the
    rounding of that dtype (one value in 128 for bfloat16)."""
    import torch

    weight = module.weight
    dtype = weight.dtype if weight.dtype in (torch.float16, torch.bfloat16) else torch.float32
    generator = torch.Generator(device="cpu").manual_seed(0)
    probe = (torch.randn(4, weight.numel(), generator=generator) * 3).to(weight.device, dtype)
    try:
        with torch.no_grad():
            expected, got = module(probe), forward(module, probe)
    except (AttributeError, RuntimeError, TypeError, ValueError):  # e.g. FSDP's sharded weights outside a forward: keep the original
        return False
    if expected.dtype != got.dtype or expected.shape != got.shape:
        return False
    tolerance = 1e-5 if dtype == torch.float32 else 2 * torch.finfo(dtype).eps
    return bool(torch.allclose(got.float(), expected.float(), rtol=tolerance, atol=tolerance))


def wanted(setting: str | bool, device: str) -> bool:
    """``auto``: on a GPU, where launching kernels is what a small model's step waits for; a CPU computes
    the same numbers either way and keeps transformers' modules."""
    return str(device).startswith("cuda") if setting == "auto" else bool(setting)


@contextmanager
def fused_norms(model: Any) -> Iterator[int]:
    """Every RMSNorm of ``model`` of a convention that passes its probe goes through ``rms_norm`` while
    the block runs; yields how many do."""
    checked: dict[type, Callable[[Any, Any], Any] | None] = {}
    replaced = []
    for module in model.modules():
        kind = type(module)
        if kind not in checked:
            forward = convention(module)
            checked[kind] = forward if forward is not None and agrees(module, forward) else None
        forward = checked[kind]
        if forward is not None and "forward" not in vars(module):
            module.forward = types.MethodType(forward, module)
            replaced.append(module)
    try:
        yield len(replaced)
    finally:
        for module in replaced:
            del module.forward
