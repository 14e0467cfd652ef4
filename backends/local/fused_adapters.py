"""A LoRA layer's adapter added inside one matmul (``torch.addmm``) while training runs.

PEFT computes a LoRA layer as ``base(x) + lora_B(lora_A(dropout(x))) * scaling`` (its 4-bit layer
also clones ``base(x)`` first). Each of those element-wise steps reads and writes a tensor of the
layer's full output width, and backward pays the scaling again on the gradient. On the 8B QLoRA shape
this replacement removed the scaling kernels (7.6 ms a step) and half of the element-wise adds (15.1 ->
7.4 ms): the step's kernels went from 278 to 267 ms (the profiles in
benchmarks/results/train_8b_graphs_paged8.json and train_8b_swaps.json). ``addmm(base(x), a, B.T, alpha=scaling)`` does the same arithmetic
as one GEMM whose epilogue adds the base output, and its backward scales only the rank-wide gradient.
The sum is rounded once instead of three times; otherwise the layer computes what PEFT's does.

Only plain LoRA on a linear layer qualifies (one active adapter, no DoRA or other variant, no LoRA
bias, not merged, no per-call adapter arguments); anything else runs PEFT's own forward, checked on
every call so that switching adapters mid-run stays correct. Evaluation and export see PEFT's modules:
the replacement is an instance attribute removed when the block ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import forwards

KINDS = ("Linear", "Linear4bit", "Linear8bitLt")  # PEFT's LoRA classes over nn.Linear and bitsandbytes' layers


def sole_adapter(layer: Any) -> str | None:
    """The one plain-LoRA adapter ``layer`` would apply now, or None where PEFT's forward must run."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    if getattr(layer, "lora_bias", {}).get(name) or getattr(layer, "use_dora", {}).get(name):
        return None
    return str(name)


def _forward(self: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
    import torch

    name = None if args or kwargs else sole_adapter(self)
    if name is None:
        return type(self).forward(self, x, *args, **kwargs)
    weight = self.lora_B[name].weight
    autocast = torch.is_autocast_enabled(x.device.type)
    if not autocast and not x.dtype == self.lora_A[name].weight.dtype == weight.dtype:
        return type(self).forward(self, x)  # PEFT casts between the dtypes itself
    result = self.base_layer(x)
    a = self.lora_A[name](self.lora_dropout[name](x))
    if not autocast and result.dtype != a.dtype:
        return result + self.lora_B[name](a) * self.scaling[name]
    out = torch.addmm(result.reshape(-1, result.shape[-1]), a.reshape(-1, a.shape[-1]), weight.t(),
                      alpha=self.scaling[name])
    return out.view(result.shape)


def wanted(settings: dict[str, Any], device: str) -> bool:
    """``auto``: on a GPU (a CPU keeps PEFT's arithmetic, as for fused norms). Never under FSDP, whose
    sharded adapter weights only PEFT's own submodule calls gather."""
    if settings.get("strategy") == "fsdp":
        return False
    return forwards.wanted(settings.get("fused_adapters", "auto"), device)


def qualifies(module: Any) -> bool:
    """A PEFT LoRA layer over a linear layer (plain or bitsandbytes), by class."""
    kind = type(module)
    return (kind.__name__ in KINDS and kind.__module__.startswith("peft.tuners.lora")
            and hasattr(module, "lora_A") and hasattr(module, "base_layer"))


@contextmanager
def fused_adapters(model: Any) -> Iterator[int]:
    """Every qualifying LoRA layer of ``model`` adds its adapter through ``addmm`` while the block runs;
    yields how many do."""
    with forwards.per_class(model, lambda module: _forward if qualifies(module) else None) as count:
        yield count
