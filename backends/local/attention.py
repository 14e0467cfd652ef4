"""Attention over packed rows without a mask: each example attends only to itself, through the
variable-length FlashAttention kernel that PyTorch ships (``torch.nn.attention.varlen``).

With SDPA, transformers turns a packed row into a block-diagonal (S x S) mask. On an H200 that
routes every layer to cuDNN attention, whose host side builds a new execution plan for every new
row length: 144 ms of a 578 ms step in the profile of an 8B QLoRA step (benchmarks/README.md), and
the kernel still visits the masked-out blocks. The varlen kernel takes the examples' start offsets
instead, plans nothing, and computes only the diagonal blocks.

Registered with transformers as the attention implementation ``ftp_packed``. Calls without offsets
(validation batches with padding, generation) get exactly SDPA, mask included, so the model stays
correct whoever calls it. On a CPU, or for dtypes the kernel lacks, packed rows go through SDPA
one example at a time: the same numbers, used by the CPU tests.

Sliding windows (Gemma 3, the quickstart's model; Mistral; Qwen 2/3): a windowed layer passes its window
to the attention function as ``sliding_window``, as transformers' own FlashAttention integration expects,
and a token sees itself and the ``sliding_window - 1`` tokens before it: the kernel's
``window_size=(sliding_window - 1, 0)``. Only model types whose layers are known to pass it are taken
(``WINDOWED``): a windowed model that did the windowing only in its mask would silently lose it here.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAME = "ftp_packed"
# The same attention under the name a forward with offsets runs as (``offsets``): registered with no mask
# function, so transformers builds no mask for it. For ``NAME`` it would build the (S x S) block-diagonal
# mask on every forward only for the kernel to ignore it, and finding the packed examples in
# ``position_ids`` waits for the GPU (``.all()``), which also rules out capturing the step as a CUDA graph.
OFFSETS = "ftp_packed_offsets"


# windowed model types whose attention layers hand their window to the attention function (checked
# against transformers 5.24's modeling code); other windowed models keep SDPA and its mask
WINDOWED = frozenset({"gemma3", "gemma3_text", "mistral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe"})


def supports(model: Any) -> bool:
    """Models whose attention is causal attention, with or without a sliding window: no logit
    soft-capping (Gemma 2), no bidirectional attention (Gemma 3 embedding models), and windows only for
    the model types in ``WINDOWED``. Others keep SDPA and its mask."""
    config = getattr(model, "config", None)
    if (config is None or getattr(config, "attn_logit_softcapping", None)
            or getattr(config, "use_bidirectional_attention", False)):
        return False
    if windowed(model) and getattr(config, "model_type", None) not in WINDOWED:
        return False
    return any(name.endswith("self_attn") for name, _ in model.named_modules())


def windowed(model: Any) -> bool:
    """Whether any layer attends through a sliding window."""
    config = model.config
    types = getattr(config, "layer_types", None)
    if types:
        return any(t != "full_attention" for t in types)
    if bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True):
        return True
    return any(getattr(m, "sliding_window", None) for name, m in model.named_modules() if name.endswith("self_attn"))


_FLASH: dict[str, Any] = {}  # how this torch's varlen_attn says "causal" and "grouped-query"; set by _usable


def _usable(device: str, windows: bool = False) -> bool:
    """Whether packed rows can be attended to on ``device``: a CPU always can (one example at a time); a GPU
    when this torch has the varlen kernel (and, for windowed models, its ``window_size``: torch 2.11 on),
    whose signature is read here, outside compiled code (torch.compile would stop at ``inspect``)."""
    if not device.startswith("cuda"):
        return True
    if not _FLASH:
        try:
            from torch.nn.attention.varlen import varlen_attn
        except ImportError:
            return False
        params = inspect.signature(varlen_attn).parameters
        _FLASH.update(causal={"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)},
                      gqa="enable_gqa" in params)
    return not windows or "window_size" in _FLASH["causal"]


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    AttentionInterface.register(OFFSETS, packed_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks for calls without offsets, as for SDPA


@contextmanager
def offsets(config: Any) -> Iterator[None]:
    """One forward whose every packed row comes with its examples' offsets: ``OFFSETS`` while it runs,
    so no mask is made. Layers read the name at call time; a recomputing backward (gradient
    checkpointing) finds ``NAME`` again, which reaches the same function with the same offsets."""
    before = config._attn_implementation
    config._attn_implementation = OFFSETS
    try:
        yield
    finally:
        config._attn_implementation = before


def would_pack(model: Any) -> bool:
    """Whether ``packed`` would attend to packed rows without a mask on this model, where it is."""
    return (getattr(model.config, "_attn_implementation", None) == "sdpa" and supports(model)
            and _usable(str(next(model.parameters()).device), windowed(model)))


@contextmanager
def packed(model: Any) -> Iterator[bool]:
    """Use ``ftp_packed`` while the block runs (yields whether it is in use); the previous
    implementation afterwards, so exported and evaluated models are untouched."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    if not would_pack(model):
        yield False
        return
    _register()
    configs = [c for c in (config, *(getattr(config, k, None) for k in getattr(config, "sub_configs", {})))
               if c is not None]
    for c in configs:
        c._attn_implementation = NAME
    try:
        yield True
    finally:
        for c in configs:
            c._attn_implementation = before


def packed_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any,
                     dropout: float = 0.0, scaling: float | None = None, **kwargs: Any) -> tuple[Any, None]:
    """transformers' attention interface: (batch, heads, seq, dim) in, (batch, seq, heads, dim) out."""
    starts = kwargs.get("cu_seq_lens_q")
    if starts is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if query.size(0) != 1:
        raise ValueError("ftp_packed attention takes one packed row per batch")
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, dim)
    window = kwargs.get("sliding_window") or None
    if _flash_applies(q):
        out = _flash(q, k, v, starts, int(kwargs["max_length_q"]), scaling, window)
    else:
        out = _per_example(q, k, v, starts, scaling, window)
    return out.unsqueeze(0), None


def _flash_applies(q: Any) -> bool:
    """The kernel runs on CUDA in half precision (bf16 / fp16) only."""
    import torch

    return q.is_cuda and q.dtype in (torch.bfloat16, torch.float16)


def _per_example(q: Any, k: Any, v: Any, starts: Any, scaling: float | None, window: int | None = None) -> Any:
    import torch

    bounds = starts.tolist()
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        if a == b:  # an empty example: a CUDA graph's row pads its offsets with them (graphs.py)
            continue
        band = None
        if window is not None and b - a > window:  # causal and at most window - 1 tokens back
            i = torch.arange(b - a, device=q.device)
            band = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - window)
        parts.append(torch.nn.functional.scaled_dot_product_attention(
            q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1), attn_mask=band,
            is_causal=band is None, scale=scaling, enable_gqa=k.size(1) != q.size(1)).transpose(0, 1))
    return torch.cat(parts)


def _flash(q: Any, k: Any, v: Any, starts: Any, longest: int, scaling: float | None, window: int | None = None) -> Any:
    from torch.nn.attention.varlen import varlen_attn

    causal = {"window_size": (window - 1, 0)} if window is not None else _FLASH["causal"]
    options: dict[str, Any] = {"scale": scaling, **causal}
    if k.size(1) != q.size(1):
        if _FLASH["gqa"]:
            options["enable_gqa"] = True
        else:  # grouped-query attention by repetition (older torch): cheap next to the projections
            k, v = (t.repeat_interleave(q.size(1) // t.size(1), dim=1) for t in (k, v))
    return varlen_attn(q, k, v, starts, starts, longest, longest, **options)
