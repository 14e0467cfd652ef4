"""Work a training run does besides its steps, made cheaper without changing what it computes: validation
in packed rows (the loss of padded batches, with no padding and one wait for the device), and a saved
model's tokenizer serialised once per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ftp.backends.local.chat import chat_format, encode
from ftp.backends.local.modeling import load_tokenizer
from ftp.backends.local.loss import evaluate_loss
from ftp.backends.local.training import save_model


def model_and_rows(tiny_model_dir: Path, n: int) -> tuple[Any, Any, list[Any]]:
    from transformers import AutoModelForCausalLM

    from conftest import make_examples

    fmt = chat_format(load_tokenizer(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    return model, fmt, [encode(fmt, ex["messages"], 256) for ex in make_examples(n)]


@pytest.mark.parametrize("batch_size,pack_tokens", [(3, None), (8, None), (64, 90)])
def test_packed_validation_has_the_loss_of_padded_batches(tiny_model_dir: Path, batch_size: int,
                                                          pack_tokens: int | None) -> None:
    model, fmt, rows = model_and_rows(tiny_model_dir, 11)
    model.train()  # as validation finds it: scored without dropout, then put back
    pad = fmt.tokenizer.pad_token_id
    padded = evaluate_loss(model, rows, pad, "cpu", batch_size)
    packed = evaluate_loss(model, rows, pad, "cpu", batch_size, pack_tokens, pack=True)
    one_by_one = evaluate_loss(model, rows, pad, "cpu", 1)
    assert packed == pytest.approx(padded, rel=1e-5) and padded == pytest.approx(one_by_one, rel=1e-5)
    assert model.training


def test_a_row_budget_smaller_than_an_example_still_scores_every_example(tiny_model_dir: Path) -> None:
    model, fmt, rows = model_and_rows(tiny_model_dir, 4)
    pad = fmt.tokenizer.pad_token_id
    assert evaluate_loss(model, rows, pad, "cpu", 8, 1, pack=True) == pytest.approx(
        evaluate_loss(model, rows, pad, "cpu", 8), rel=1e-5)


def test_the_tokenizer_is_serialised_once_then_copied(tiny_model_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    model, fmt, _ = model_and_rows(tiny_model_dir, 1)
    out = tmp_path / "model"
    reference = tmp_path / "reference"
    fmt.tokenizer.chat_template = fmt.template
    fmt.tokenizer.save_pretrained(str(reference))

    saves: list[str] = []
    original = type(fmt.tokenizer).save_pretrained

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        saves.append(str(args[0]) if args else "")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(fmt.tokenizer), "save_pretrained", counted)
    files = save_model(model, fmt, out, {"step": 1})
    assert files and "tokenizer_config.json" in files and "ftp_model.json" not in files
    again = save_model(model, fmt, out, {"step": 2}, tokenizer_files=files)
    assert again == files and len(saves) == 1  # the second save copied the files
    for name in files:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert '"step": 2' in (out / "ftp_model.json").read_text()
    reloaded = load_tokenizer(out)
    assert reloaded.chat_template == fmt.template and len(reloaded) == len(fmt.tokenizer)

    (out / files[0]).unlink()  # a file gone (another attempt wrote the folder): serialised again
    assert save_model(model, fmt, out, {"step": 3}, tokenizer_files=files) == files and len(saves) == 2


def test_a_run_says_where_its_time_went(tiny_model_dir: Path, tmp_path: Path) -> None:
    import time

    from conftest import train_directly

    start = time.perf_counter()
    _, result, _ = train_directly(tiny_model_dir, tmp_path, {"method": "lora", "max_steps": 3, "batch_size": 4,
                                                             "checkpoint_steps": 1})
    wall = time.perf_counter() - start
    phases = result.phases
    assert {"setup", "tokenizer", "data", "model", "resume", "steps", "checkpoint", "finish"} <= set(phases)
    assert "validation" not in phases  # no validation split: none ran
    assert all(v >= 0 for v in phases.values()) and phases["steps"] > 0
    assert sum(phases.values()) <= wall + 0.001 * len(phases)  # each rounded to the millisecond
    assert result.model_dump(mode="json")["phases"] == phases  # recorded in state.json with the step's outputs
