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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .forwards import per_class, same_output


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
    return same_output(expected, got, float32_tolerance=1e-5)


@contextmanager
def fused_norms(model: Any) -> Iterator[int]:
    """Every RMSNorm of ``model`` of a convention that passes its probe goes through ``rms_norm`` while
    the block runs; yields how many do."""

    def choose(module: Any) -> Callable[[Any, Any], Any] | None:
        forward = convention(module)
        return forward if forward is not None and agrees(module, forward) else None

    with per_class(model, choose) as count:
        yield count
