"""A gated MLP (Llama's SwiGLU, Gemma's GELU-tanh gate) that keeps only its two projections for backward.

transformers writes the MLP as ``down(act(gate(x)) * up(x))``. Autograd then keeps three tensors of the
MLP's full width for backward: ``gate(x)`` for the activation's gradient, ``up(x)`` and ``act(gate(x))``
for the product's. The third is a function of the first: recomputing it in backward is one element-wise
kernel, and it frees a width-sized tensor per layer. On the 8B QLoRA shape (gradient checkpointing, so
one layer's activations at a time) that tensor is 56 MiB, what ftp's step kept beyond TRL's with Liger's
SwiGLU kernel (benchmarks/results/trace_8b_*.json); the measured peak fell 6.66 -> 6.63 GiB. Without
checkpointing it is that much per layer. The arithmetic is transformers' own, operation for operation, so outputs and
gradients are bit-identical.

A class is taken only after the replacement gave the module's own output on a probe (as fused norms
are, norms.py), so a model whose MLP is written otherwise keeps its own. Evaluation and export see the
original modules: the replacement is an instance attribute removed when the block ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from .forwards import per_class, same_output

ACTIVATIONS = ("silu", "gelu_tanh")


def _act(kind: str, x: Any) -> Any:
    import torch.nn.functional as F

    return F.silu(x) if kind == "silu" else F.gelu(x, approximate="tanh")


@cache
def _product() -> Any:
    """The autograd function, made on first use so that importing this module does not import torch."""
    import torch

    class GatedProduct(torch.autograd.Function):
        """``act(gate) * up``, saving ``gate`` and ``up`` only."""

        @staticmethod
        def forward(ctx: Any, gate: Any, up: Any, kind: str) -> Any:
            ctx.save_for_backward(gate, up)
            ctx.kind = kind
            return _act(kind, gate) * up

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            gate, up = ctx.saved_tensors
            d_up = grad * _act(ctx.kind, gate) if ctx.needs_input_grad[1] else None
            d_gate = None
            if ctx.needs_input_grad[0]:
                d_act = grad * up
                d_gate = (torch.ops.aten.silu_backward(d_act, gate) if ctx.kind == "silu"
                          else torch.ops.aten.gelu_backward(d_act, gate, approximate="tanh"))
            return d_gate, d_up, None

    return GatedProduct


def _forward(kind: str) -> Callable[[Any, Any], Any]:
    def forward(self: Any, x: Any) -> Any:
        return self.down_proj(_product().apply(self.gate_proj(x), self.up_proj(x), kind))

    return forward


def activation(module: Any) -> str | None:
    """Which of ACTIVATIONS ``module.act_fn`` computes, by its output on a probe; None for others."""
    import torch

    act = getattr(module, "act_fn", None)
    if not callable(act) or not all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj")):
        return None
    probe = torch.linspace(-6, 6, 97)
    with torch.no_grad():
        try:
            got = act(probe)
        except (RuntimeError, TypeError, ValueError):
            return None
    return next((kind for kind in ACTIVATIONS if torch.equal(got, _act(kind, probe))), None)


def agrees(module: Any, forward: Callable[[Any, Any], Any]) -> bool:
    """Whether ``forward`` gives ``module``'s own output on a probe in its dtype and on its device."""
    import torch

    weight = next((p for p in module.parameters() if p.is_floating_point()), None)
    if weight is None or not hasattr(module.gate_proj, "in_features"):
        return False
    dtype = weight.dtype if weight.dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.bfloat16
    probe = torch.randn(3, module.gate_proj.in_features, generator=torch.Generator().manual_seed(0))
    probe = probe.to(weight.device, dtype)
    # dropout off, and only dropout: other layers may change state in eval mode (bitsandbytes repacks a
    # 4-bit weight for CPU inference the first time it runs outside training)
    dropouts = [m for m in module.modules() if isinstance(m, torch.nn.Dropout) and m.training]
    for m in dropouts:
        m.eval()
    try:
        with torch.no_grad():
            expected, got = module(probe), forward(module, probe)
    except (AttributeError, RuntimeError, TypeError, ValueError):  # e.g. FSDP's sharded weights: keep the original
        return False
    finally:
        for m in dropouts:
            m.train()
    return same_output(expected, got, float32_tolerance=1e-6)  # the same kernels: equal


@contextmanager
def lean_mlp(model: Any) -> Iterator[int]:
    """Every gated MLP of ``model`` that passes its probe saves only its projections while the block runs;
    yields how many do."""

    def choose(module: Any) -> Callable[[Any, Any], Any] | None:
        act = activation(module)
        forward = _forward(act) if act is not None else None
        return forward if forward is not None and agrees(module, forward) else None

    with per_class(model, choose) as count:
        yield count
