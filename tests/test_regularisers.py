"""Label smoothing and NEFTune embedding noise: they change training and only training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import train_directly

from ftp.backends.local.loss import AnswerLoss, noisy_embeddings
from ftp.backends.local.modeling import collate, collate_packed


def first_loss(ctx: object) -> float:
    return next(r["train_loss"] for r in ctx.rows if "train_loss" in r)  # type: ignore[attr-defined]


@pytest.mark.parametrize("option", [{"label_smoothing": 0.2}, {"neftune_alpha": 15.0}])
def test_regulariser_changes_the_training_loss_not_the_validation_loss(tiny_model_dir: Path, tmp_path: Path,
                                                                       option: dict[str, float]) -> None:
    plain, _, _ = train_directly(tiny_model_dir, tmp_path / "plain", {"max_steps": 1, "batch_size": 4})
    changed, _, _ = train_directly(tiny_model_dir, tmp_path / "changed", {"max_steps": 1, "batch_size": 4, **option})
    assert not math.isclose(first_loss(plain), first_loss(changed), rel_tol=1e-6)


def test_smoothing_and_noise_are_off_in_eval_mode(tiny_model_dir: Path) -> None:
    from conftest import make_examples
    from transformers import AutoModelForCausalLM

    from ftp.backends.local.chat import chat_format, encode
    from ftp.backends.local.loss import answer_loss
    from ftp.backends.local.modeling import load_tokenizer

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    rows = [encode(fmt, ex["messages"], 64) for ex in make_examples(4)]
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = collate(rows, fmt.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        plain = float(answer_loss(AnswerLoss(lm).eval(), batch)[0])
        both = AnswerLoss(lm, label_smoothing=0.3, neftune_alpha=50.0).eval()
        assert float(answer_loss(both, batch)[0]) == pytest.approx(plain, rel=1e-6)
        assert float(answer_loss(both.train(), batch)[0]) != pytest.approx(plain, rel=1e-3)


def test_neftune_noise_is_scaled_by_each_packed_examples_length() -> None:
    torch.manual_seed(0)
    embeds = torch.zeros(1, 20, 16)
    starts = torch.tensor([0, 4, 20], dtype=torch.int32)  # two examples: 4 and 16 tokens
    noisy = noisy_embeddings(embeds, alpha=5.0, starts=starts)
    short, long_ = noisy[0, :4].abs().max(), noisy[0, 4:].abs().max()
    assert short <= 5.0 / math.sqrt(4 * 16) + 1e-6 and long_ <= 5.0 / math.sqrt(16 * 16) + 1e-6
    assert short > 5.0 / math.sqrt(16 * 16)  # the short example gets the larger noise it would get alone
    padded = noisy_embeddings(torch.zeros(2, 6, 16), 5.0, attention_mask=torch.tensor([[1] * 6, [1] * 3 + [0] * 3]))
    assert padded[1].abs().max() > 5.0 / math.sqrt(6 * 16)  # per row, by its real length


def test_packed_and_padded_noise_agree_in_scale(tiny_model_dir: Path) -> None:
    """The same examples packed or padded get noise of the same size (a per-batch hook would not)."""
    from conftest import make_examples

    from ftp.backends.local.chat import chat_format, encode
    from ftp.backends.local.modeling import load_tokenizer

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    rows = [encode(fmt, ex["messages"], 64) for ex in make_examples(3)]
    packed = collate_packed(rows, "cpu", fmt.tokenizer.pad_token_id)
    padded = collate(rows, fmt.tokenizer.pad_token_id, "cpu")
    torch.manual_seed(1)
    a = noisy_embeddings(torch.zeros(1, packed.input_ids.size(1), 8), 5.0, starts=packed.starts)
    b = noisy_embeddings(torch.zeros(*padded.input_ids.shape, 8), 5.0, attention_mask=padded.attention_mask)
    first = len(rows[0].input_ids)
    assert float(a[0, :first].abs().max()) == pytest.approx(float(b[0, :first].abs().max()), rel=0.3)


def test_float32_weights_under_bfloat16_autocast(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``backends.local.weights: float32``: the frozen weights stay float32 and matmuls run in bf16 (the
    mixed precision a TRL script gets from an fp32 checkpoint with ``bf16=True``)."""
    from ftp.backends.local.modeling import placement

    where = placement("cpu", "bfloat16", "float32")
    assert (where.dtype_name, str(where.dtype)) == ("bfloat16", "torch.float32")
    assert placement("cpu", "float32", "float32").weights == ""  # nothing to mix in plain fp32
    ctx, result, trained = train_directly(tiny_model_dir, tmp_path, {"max_steps": 2, "batch_size": 4},
                                          {"devices": "cpu", "dtype": "bfloat16", "weights": "float32"})
    assert result.steps == 2 and math.isfinite(first_loss(ctx))
    frozen = [p for p in trained.model.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.float32 for p in frozen)
