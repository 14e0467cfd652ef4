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
    from ftp.backends.local.modeling import answer_loss

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


def test_the_offsets_decide_what_each_token_sees(tiny_model_dir: Path) -> None:
    """One offset pair for the whole row lets examples attend to each other: the loss changes."""
    import torch

    from ftp.backends.local.attention import packed
    from ftp.backends.local.modeling import answer_loss, collate_packed

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
    from ftp.backends.local.modeling import answer_loss, collate

    fmt, rows, model = rows_and_model(tiny_model_dir)
    batch = collate(rows, fmt.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        outside = float(answer_loss(model, batch)[0])
        with packed(model):
            inside = float(answer_loss(model, batch)[0])
    assert abs(inside - outside) < 1e-5


@pytest.mark.parametrize("extra", [{"sliding_window": 16}, {"attn_logit_softcapping": 50.0}])
def test_models_with_windows_or_soft_capping_keep_sdpa(extra: dict[str, Any]) -> None:
    from transformers import AutoModelForCausalLM, Gemma2Config, MistralConfig

    from ftp.backends.local.attention import packed, supports

    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                 num_key_value_heads=1, head_dim=16)
    soft = "attn_logit_softcapping" in extra
    config = Gemma2Config(**small, **extra) if soft else MistralConfig(**small, **extra)
    config._attn_implementation = "eager" if soft else "sdpa"  # Gemma 2 has no SDPA in transformers
    model = AutoModelForCausalLM.from_config(config)
    assert not supports(model)
    with packed(model) as used:
        assert not used and model.config._attn_implementation == config._attn_implementation


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
