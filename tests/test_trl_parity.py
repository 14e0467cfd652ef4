"""ftp's training loop computes what TRL's SFTTrainer computes.

The quality benchmark compares ftp's defaults against a hand-written TRL script; a gap there could be a
bug in ftp's loss (answer-only positions, packed rows, normalisation over a step's tokens across
micro-batches), its optimiser or its schedule. Here both start from the same LoRA weights and take
whole-dataset steps (so example order cannot matter), without dropout: the per-step losses and the
trained weights must then agree to float32 rounding, packed or padded, with gradient accumulation.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from conftest import make_examples, train_directly

pytest.importorskip("trl")  # in the dev extra; the benchmark's reference

EXAMPLES, MICRO, ACCUM, STEPS, LR = 16, 8, 2, 6, 3e-3


def start_value(name: str, shape: Any) -> Any:
    """The same starting LoRA weights whatever the loop: seeded by the tensor's name. B is not zero, so
    the first step already trains A and B through each other."""
    import torch

    key = name.split("base_model.model.")[-1]
    generator = torch.Generator().manual_seed(int(hashlib.sha256(key.encode()).hexdigest()[:8], 16))
    return torch.randn(tuple(shape), generator=generator) * 0.05


def set_start(model: Any) -> int:
    import torch

    with torch.no_grad():
        lora = [(n, p) for n, p in model.named_parameters() if "lora_" in n]
        for name, p in lora:
            p.copy_(start_value(name, p.shape))
    return len(lora)


def lora_weights(model: Any) -> dict[str, Any]:
    return {n.split("base_model.model.")[-1]: p.detach().float().clone()
            for n, p in model.named_parameters() if "lora_" in n}


@pytest.fixture(scope="module")
def trl_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[float], dict[str, Any]]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = tmp_path_factory.mktemp("trl")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    rows = [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in make_examples(EXAMPLES)]
    config = SFTConfig(output_dir=str(out), learning_rate=LR, per_device_train_batch_size=MICRO,
                       gradient_accumulation_steps=ACCUM, num_train_epochs=STEPS, lr_scheduler_type="linear",
                       completion_only_loss=True, max_length=64, use_cpu=True, bf16=False, seed=1, logging_steps=1,
                       save_strategy="no", report_to="none", gradient_checkpointing=False, disable_tqdm=True)
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                task_type="CAUSAL_LM"))
    assert set_start(trainer.model) == 28  # q, k, v, o, gate, up, down x A, B x 2 layers
    trainer.train()
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == STEPS
    return losses, lora_weights(trainer.model)


def ftp_run(tiny_model_dir: Path, folder: Path, monkeypatch: pytest.MonkeyPatch, packing: bool = True,
            scheduler: str = "linear") -> tuple[list[float], dict[str, Any]]:
    import ftp.backends.local.training as training

    original = training.prepare_model

    def from_the_same_start(*args: Any, **kwargs: Any) -> Any:
        model = original(*args, **kwargs)
        set_start(model)
        return model

    monkeypatch.setattr(training, "prepare_model", from_the_same_start)
    ctx, result, trained = train_directly(
        tiny_model_dir, folder,
        {"batch_size": MICRO, "gradient_accumulation_steps": ACCUM, "epochs": STEPS, "learning_rate": LR,
         "scheduler": scheduler, "warmup_ratio": 0.0, "packing": packing,
         "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}, examples=EXAMPLES)
    assert result.steps == STEPS
    return [row["train_loss"] for row in ctx.rows if "train_loss" in row], lora_weights(trained.model)


def largest_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("packing", [True, False], ids=["packed", "padded"])
def test_ftp_trains_what_trl_trains(packing: bool, trl_run: tuple[list[float], dict[str, Any]],
                                    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    losses, weights = ftp_run(tiny_model_dir, tmp_path, monkeypatch, packing=packing)
    trl_losses, trl_weights = trl_run
    assert losses == pytest.approx(trl_losses, rel=1e-4)  # TRL logs 4 significant digits
    worst = largest_difference(weights, trl_weights)
    assert worst < 1e-5, f"LoRA weights differ from TRL's by up to {worst:.2e}"


def test_the_comparison_sees_a_different_schedule(trl_run: tuple[list[float], dict[str, Any]], tiny_model_dir: Path,
                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ftp's default cosine decay against TRL's linear one, nothing else changed: the test above would fail."""
    losses, weights = ftp_run(tiny_model_dir, tmp_path, monkeypatch, scheduler="cosine")
    trl_losses, trl_weights = trl_run
    assert losses[0] == pytest.approx(trl_losses[0], rel=1e-4)  # the same start, the same first loss
    assert largest_difference(weights, trl_weights) > 1e-4
