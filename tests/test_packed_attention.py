"""Mask-free attention for packed rows (backends/local/attention.py): the numbers of SDPA with its
block-diagonal mask, driven by the examples' offsets, and only where the model allows it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftp.backends.local.chat import chat_format, encode
from ftp.backends.local.modeling import load_tokenizer


def rows_and_model(tiny_model_dir: Path, n: int = 5) -> tuple[Any, list[Any], Any]:
    from transformers import AutoModelForCausalLM

    from conftest import make_examples

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    return fmt, [encode(fmt, ex["messages"], 256) for ex in make_examples(n)], model


def loss_and_grads(model: Any, batch: Any) -> tuple[float, list[Any]]:
    from ftp.backends.local.loss import answer_loss

    model.zero_grad()
    loss, _ = answer_loss(model, batch)
    loss.backward()
    return float(loss), [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_packed_attention_has_the_loss_and_gradients_of_masked_sdpa(tiny_model_dir: Path) -> None:
    from ftp.backends.local.attention import NAME, packed
    from ftp.backends.local.modeling import collate_packed

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id, 64)  # with a filler example too
    masked, masked_grads = loss_and_grads(model, batch)
    with packed(model) as used:
        assert used and model.config._attn_implementation == NAME
        mask_free, grads = loss_and_grads(model, batch)
    assert model.config._attn_implementation == "sdpa"  # restored for evaluation and export
    assert abs(mask_free - masked) < 1e-4
    assert len(grads) == len(masked_grads)
    for a, b in zip(grads, masked_grads):
        assert (a - b).abs().max() < 1e-4


def test_a_forward_with_offsets_builds_no_mask(tiny_model_dir: Path) -> None:
    """The block-diagonal mask is never used by the kernel, and finding packed examples waits for the device:
    layers of a forward with offsets see the name that has no mask function, and attention_mask None."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    from ftp.backends.local.attention import NAME, OFFSETS, packed
    from ftp.backends.local.modeling import collate_packed

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id)
    seen: list[tuple[str, Any]] = []
    attn = next(m for name, m in model.named_modules() if name.endswith("self_attn"))
    hook = attn.register_forward_pre_hook(
        lambda m, args, kwargs: seen.append((m.config._attn_implementation, kwargs.get("attention_mask"))),
        with_kwargs=True)
    with packed(model):
        loss_and_grads(model, batch)
        assert model.config._attn_implementation == NAME  # only the forward ran as OFFSETS
    hook.remove()
    assert seen == [(OFFSETS, None)]
    assert OFFSETS not in ALL_MASK_ATTENTION_FUNCTIONS and NAME in ALL_MASK_ATTENTION_FUNCTIONS


@pytest.mark.parametrize("torch_api", ["is_causal", "window_size"])
def test_the_kernel_call_matches_torch_varlen_attn(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                   torch_api: str) -> None:
    """CI has no GPU: torch's varlen kernel is replaced by a CPU stand-in that checks the call (causal, the same
    offsets for queries and keys, the longest example, grouped-query heads as the torch version expects them)
    and computes it example by example. The GPU run is benchmarks/packed_attention_gpu.py."""
    import torch
    import torch.nn.attention.varlen as varlen

    from ftp.backends.local import attention
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate_packed

    calls: list[dict[str, Any]] = []

    def stand_in(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *, scale: Any = None,
                 is_causal: bool = False, window_size: tuple[int, int] = (-1, -1), enable_gqa: bool = False) -> Any:
        assert is_causal if torch_api == "is_causal" else tuple(window_size) == (-1, 0)
        assert cu_q is cu_k and max_q == max_k
        bounds = cu_q.tolist()
        assert max_q == max(b - a for a, b in zip(bounds, bounds[1:]))
        assert enable_gqa or k.size(1) == q.size(1)
        calls.append({"gqa": enable_gqa, "kv_heads": k.size(1)})
        return torch.cat([torch.nn.functional.scaled_dot_product_attention(
            q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1), is_causal=True, scale=scale,
            enable_gqa=enable_gqa).transpose(0, 1) for a, b in zip(bounds, bounds[1:])])

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id, 64)
    with torch.no_grad():
        masked = float(answer_loss(model, batch)[0])
        with attention.packed(model):
            monkeypatch.setattr(varlen, "varlen_attn", stand_in)
            monkeypatch.setattr(attention, "_flash_applies", lambda q: True)
            monkeypatch.setitem(attention._FLASH, "causal",
                                {"is_causal": True} if torch_api == "is_causal" else {"window_size": (-1, 0)})
            monkeypatch.setitem(attention._FLASH, "gqa", torch_api == "window_size")
            kernel = float(answer_loss(model, batch)[0])
    assert len(calls) == model.config.num_hidden_layers
    # the tiny model has 4 query heads and 2 key/value heads: repeated for the older API, passed as GQA to the newer
    assert all(c["gqa"] == (torch_api == "window_size") for c in calls)
    assert all(c["kv_heads"] == (2 if torch_api == "window_size" else 4) for c in calls)
    assert abs(kernel - masked) < 1e-4


def test_the_offsets_decide_what_each_token_sees(tiny_model_dir: Path) -> None:
    """One offset pair for the whole row lets examples attend to each other: the loss changes."""
    import torch

    from ftp.backends.local.attention import packed
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate_packed

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate_packed(rows, "cpu")
    with torch.no_grad(), packed(model):
        right = float(answer_loss(model, batch)[0])
        batch.starts = torch.tensor([0, batch.input_ids.size(1)], dtype=torch.int32)
        crossed = float(answer_loss(model, batch)[0])
    assert abs(right - crossed) > 1e-3


def test_padded_batches_keep_their_mask_while_packed_attention_is_on(tiny_model_dir: Path) -> None:
    """Validation batches (padding, no offsets) go through SDPA with their padding mask."""
    import torch

    from ftp.backends.local.attention import packed
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import collate

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate(rows, fmt.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        outside = float(answer_loss(model, batch)[0])
        with packed(model):
            inside = float(answer_loss(model, batch)[0])
    assert abs(inside - outside) < 1e-5


@pytest.mark.parametrize("kind", ["softcapping", "unlisted-window", "bidirectional"])
def test_models_the_kernel_would_get_wrong_keep_sdpa(kind: str) -> None:
    """Soft-capped logits (Gemma 2), a windowed model type not known to pass its window to the attention
    function (Cohere 2 here), bidirectional attention (Gemma 3 embedding models)."""
    from transformers import AutoModelForCausalLM, Cohere2Config, Gemma2Config, Gemma3TextConfig

    from ftp.backends.local.attention import packed, supports

    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16)
    if kind == "softcapping":
        config: Any = Gemma2Config(**small, attn_logit_softcapping=50.0)
        config._attn_implementation = "eager"  # Gemma 2 has no SDPA in transformers
    elif kind == "unlisted-window":
        config = Cohere2Config(**small, sliding_window=8, layer_types=["sliding_attention", "full_attention"])
        config._attn_implementation = "sdpa"
    else:
        config = Gemma3TextConfig(**small, sliding_window=8, use_bidirectional_attention=True)
        config._attn_implementation = "sdpa"
    model = AutoModelForCausalLM.from_config(config)
    assert not supports(model)
    with packed(model) as used:
        assert not used and model.config._attn_implementation == config._attn_implementation


def windowed_gemma(window: int = 4) -> Any:
    """A 2-layer Gemma 3 text model (one sliding-window layer, one full) with random weights."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=window,
                              layer_types=["sliding_attention", "full_attention"], max_position_embeddings=128)
    config._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(config).float()


def windowed_batch(lengths: tuple[int, ...] = (3, 11, 7, 14)) -> Any:
    """A packed row of examples longer and shorter than the window, every token after the first trained."""
    import random

    from ftp.backends.local.chat import Encoded
    from ftp.backends.local.modeling import collate_packed

    rng = random.Random(1)
    rows = []
    for n in lengths:
        ids = [rng.randrange(2, 64) for _ in range(n)]
        rows.append(Encoded(input_ids=ids, labels=[-100] + ids[1:], truncated=False))
    return collate_packed(rows, "cpu")


def test_sliding_windows_get_the_numbers_of_masked_sdpa() -> None:
    """Gemma 3's sliding-window layers (the quickstart's model) over a packed row, mask-free: the loss and
    gradients of SDPA with transformers' windowed block-diagonal mask."""
    from ftp.backends.local.attention import NAME, packed, supports

    model, batch = windowed_gemma(), windowed_batch()
    assert supports(model)
    masked, masked_grads = loss_and_grads(model, batch)
    with packed(model) as used:
        assert used and model.config._attn_implementation == NAME
        mask_free, grads = loss_and_grads(model, batch)
    assert abs(mask_free - masked) < 1e-5
    for a, b in zip(grads, masked_grads):
        assert (a - b).abs().max() < 1e-5
    wide, _ = loss_and_grads(windowed_gemma(window=64), batch)  # the window matters on these lengths
    assert abs(wide - masked) > 1e-4


def test_windowed_layers_ask_the_kernel_for_their_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel call for each layer: window_size (window - 1, 0) on the sliding layer, plain causal on the
    full one (a CPU stand-in for torch's kernel computes it with an explicit band mask)."""
    import torch
    import torch.nn.attention.varlen as varlen

    from ftp.backends.local import attention
    from ftp.backends.local.loss import answer_loss

    seen: list[tuple[int, int]] = []

    def stand_in(q: Any, k: Any, v: Any, cu_q: Any, cu_k: Any, max_q: int, max_k: int, *, scale: Any = None,
                 window_size: tuple[int, int] = (-1, -1), enable_gqa: bool = False) -> Any:
        seen.append(tuple(window_size))
        left = window_size[0]
        bounds, parts = cu_q.tolist(), []
        for a, b in zip(bounds, bounds[1:]):
            i = torch.arange(b - a)
            band = (i[None, :] <= i[:, None]) & ((i[None, :] >= i[:, None] - left) if left >= 0 else True)
            parts.append(torch.nn.functional.scaled_dot_product_attention(
                q[a:b].transpose(0, 1), k[a:b].transpose(0, 1), v[a:b].transpose(0, 1), attn_mask=band, scale=scale,
                enable_gqa=enable_gqa).transpose(0, 1))
        return torch.cat(parts)

    model, batch = windowed_gemma(), windowed_batch()
    with torch.no_grad():
        masked = float(answer_loss(model, batch)[0])
        with attention.packed(model):
            monkeypatch.setattr(varlen, "varlen_attn", stand_in)
            monkeypatch.setattr(attention, "_flash_applies", lambda q: True)
            monkeypatch.setitem(attention._FLASH, "causal", {"window_size": (-1, 0)})
            monkeypatch.setitem(attention._FLASH, "gqa", True)
            kernel = float(answer_loss(model, batch)[0])
    assert seen == [(3, 0), (-1, 0)]
    assert abs(kernel - masked) < 1e-5


def test_a_torch_without_the_window_argument_keeps_sdpa_for_windowed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch 2.10's varlen kernel says causal with ``is_causal`` and has no window: windowed models on a
    GPU keep SDPA there, unwindowed ones take the kernel."""
    from ftp.backends.local import attention

    monkeypatch.setitem(attention._FLASH, "causal", {"is_causal": True})
    assert not attention._usable("cuda:0", windows=True)
    assert attention._usable("cuda:0", windows=False)
    assert attention._usable("cpu", windows=True)


def test_training_reports_the_attention_it_uses(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A packed training run on a model that allows it says so, and trains; ``attention: sdpa`` opts out."""
    from conftest import train_directly

    ctx, _, trained = train_directly(tiny_model_dir, tmp_path / "a", {"method": "lora", "max_steps": 2, "batch_size": 4})
    assert "attention" in ctx.events
    assert [r["step"] for r in ctx.rows if "train_loss" in r] == [1, 2]
    assert trained.model.config._attn_implementation == "sdpa"
    ctx, _, _ = train_directly(tiny_model_dir, tmp_path / "b", {"method": "lora", "max_steps": 1, "batch_size": 4},
                               {"devices": "cpu", "attention": "sdpa"})
    assert "attention" not in ctx.events
