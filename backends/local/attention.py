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
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

NAME = "ftp_packed"


def supports(model: Any) -> bool:
    """Models whose attention is plain causal attention: no sliding windows (Gemma 2/3, Mistral,
    Qwen's optional window), no logit soft-capping (Gemma 2). Others keep SDPA and its mask."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "attn_logit_softcapping", None) or _windowed(config):
        return False
    attention = [m for name, m in model.named_modules() if name.endswith("self_attn")]
    return bool(attention) and all(getattr(m, "sliding_window", None) is None for m in attention)


def _windowed(config: Any) -> bool:
    types = getattr(config, "layer_types", None)
    if types:
        return any(t != "full_attention" for t in types)
    return bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True)


_FLASH: dict[str, Any] = {}  # how this torch's varlen_attn says "causal" and "grouped-query"; set by _usable


def _usable(device: str) -> bool:
    """Whether packed rows can be attended to on ``device``: a CPU always can (one example at a time); a GPU
    when this torch has the varlen kernel, whose signature is read here, outside compiled code
    (torch.compile would stop at ``inspect``)."""
    if not device.startswith("cuda") or _FLASH:
        return True
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return False
    params = inspect.signature(varlen_attn).parameters
    _FLASH.update(causal={"is_causal": True} if "is_causal" in params else {"window_size": (-1, 0)},
                  gqa="enable_gqa" in params)
    return True


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(NAME, packed_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)  # masks for calls without offsets, as for SDPA


@contextmanager
def packed(model: Any) -> Iterator[bool]:
    """Use ``ftp_packed`` while the block runs (yields whether it is in use); the previous
    implementation afterwards, so exported and evaluated models are untouched."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    if before != "sdpa" or not supports(model) or not _usable(str(next(model.parameters()).device)):
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
    if _flash_applies(q):
        out = _flash(q, k, v, starts, int(kwargs["max_length_q"]), scaling)
    else:
        out = _per_example(q, k, v, starts, scaling)
    return out.unsqueeze(0), None


def _flash_applies(q: Any) -> bool:
    """The kernel runs on CUDA in half precision (bf16 / fp16) only."""
    import torch

    return q.is_cuda and q.dtype in (torch.bfloat16, torch.float16)


def _per_example(q: Any, k: Any, v: Any, starts: Any, scaling: float | None) -> Any:
    import torch

    bounds = starts.tolist()
    parts = []
    for a, b in zip(bounds, bounds[1:]):
        parts.append(torch.nn.functional.scaled_dot_product_attention(
            q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1), is_causal=True, scale=scaling,
            enable_gqa=k.size(1) != q.size(1)).transpose(0, 1))
    return torch.cat(parts)


def _flash(q: Any, k: Any, v: Any, starts: Any, longest: int, scaling: float | None) -> Any:
    from torch.nn.attention.varlen import varlen_attn

    options: dict[str, Any] = {"scale": scaling, **_FLASH["causal"]}
    if k.size(1) != q.size(1):
        if _FLASH["gqa"]:
            options["enable_gqa"] = True
        else:  # grouped-query attention by repetition (older torch): cheap next to the projections
            k, v = (t.repeat_interleave(q.size(1) // t.size(1), dim=1) for t in (k, v))
    return varlen_attn(q, k, v, starts, starts, longest, longest, **options)
