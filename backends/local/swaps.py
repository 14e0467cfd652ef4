"""Module forwards that hold only while training runs: each is undone when training ends, so evaluation
and export see transformers' and PEFT's own modules."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from . import forwards, fused_adapters, gated_mlp, norms

if TYPE_CHECKING:
    from .loop import Loop


def swap_forwards(loop: Loop, stack: ExitStack) -> None:
    """The module forwards that hold only while training runs (each undone by ``stack``), each reported:
    RMSNorm in one call, gated MLPs that save less, LoRA's adapter inside one matmul."""
    settings, device, say = loop.request.backend_settings, loop.where.device, loop.ctx.reporter.event
    core = loop.parts.core
    if forwards.wanted(settings.get("fused_norms", "auto"), device):
        say("fused_norms", message=f"{stack.enter_context(norms.fused_norms(core))} RMSNorm modules run as one "
                                   "rms_norm call each")
    if forwards.wanted(settings.get("lean_mlp", "auto"), device):
        say("lean_mlp", message=f"{stack.enter_context(gated_mlp.lean_mlp(core))} gated MLPs keep only their two "
                                "projections for backward")
    if fused_adapters.wanted(settings, device):
        say("fused_adapters", message=f"{stack.enter_context(fused_adapters.fused_adapters(core))} LoRA layers add "
                                      "their adapter inside one addmm each")
