"""LoRA's adapter added inside one addmm while training (backends/local/fused_adapters.py): PEFT's own
outputs and gradients for every plain LoRA layer, PEFT's forward for everything else, and a training
run that takes the same steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ftp.backends.local.fused_adapters import fused_adapters, qualifies, sole_adapter, wanted


def lora_model(dropout: float = 0.0, **extra: Any) -> Any:
    """Two linear layers under PEFT LoRA, with B not zero (a fresh adapter's B is zero and would hide a
    wrong scaling)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(24, 40), torch.nn.ReLU(), torch.nn.Linear(40, 16))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=12, lora_dropout=dropout, target_modules=["0", "2"],
                                            **extra))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    return model


def run(model: Any, x: torch.Tensor, seed: int = 3) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    torch.manual_seed(seed)  # the same dropout masks for both forwards
    y = model(x)
    (y.float() * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    grads = [x.grad] + [p.grad for n, p in model.named_parameters() if p.requires_grad]
    return y.detach(), [g.detach().clone() for g in grads]


def assert_same(a: tuple[torch.Tensor, list[torch.Tensor]], b: tuple[torch.Tensor, list[torch.Tensor]],
                tol: float) -> None:
    torch.testing.assert_close(a[0].float(), b[0].float(), rtol=tol, atol=tol)
    assert len(a[1]) == len(b[1]) >= 5  # x, and A and B of both layers (and DoRA's magnitudes)
    for ga, gb in zip(a[1], b[1]):
        torch.testing.assert_close(ga.float(), gb.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_fused_layers_give_peft_s_outputs_and_gradients(dropout: float) -> None:
    model = lora_model(dropout)
    model.train()
    x = torch.randn(3, 5, 24, generator=torch.Generator().manual_seed(1))
    expected = run(model, x)
    with fused_adapters(model) as count:
        assert count == 2
        got = run(model, x)
    assert_same(got, expected, 1e-5)
    assert not any("forward" in vars(m) for m in model.modules())  # PEFT's forward is back


def test_under_bfloat16_autocast_the_fused_layer_is_as_close_to_float32_as_peft_s() -> None:
    model = lora_model()
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(2))
    exact = run(model, x)
    for m in model.modules():  # what training does under autocast (precision.adapters_follow_autocast)
        if hasattr(m, "cast_input_dtype_enabled"):
            m.cast_input_dtype_enabled = False
    with torch.autocast("cpu", dtype=torch.bfloat16):
        peft_s = run(model, x)
        with fused_adapters(model):
            fused = run(model, x)
    assert fused[0].dtype == peft_s[0].dtype == torch.bfloat16

    def error(got: tuple[torch.Tensor, list[torch.Tensor]]) -> list[float]:
        pairs = [(got[0], exact[0])] + list(zip(got[1], exact[1]))
        return [float((a.float() - b).norm() / b.norm()) for a, b in pairs]

    # bfloat16 keeps 8 bits: both are about 1% off float32; the fused sum, rounded once, is not further off
    for f, p in zip(error(fused), error(peft_s)):
        assert f < 0.03 and f <= 1.25 * p + 1e-3


def test_what_is_not_plain_lora_runs_peft_s_forward() -> None:
    model = lora_model(use_dora=True)
    layer = next(m for m in model.modules() if qualifies(m))
    assert sole_adapter(layer) is None
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(4))
    expected = run(model, x)
    with fused_adapters(model):
        assert_same(run(model, x), expected, 1e-6)

    plain = lora_model()
    layer = next(m for m in plain.modules() if qualifies(m))
    assert sole_adapter(layer) == "default"
    with plain.disable_adapter():
        assert sole_adapter(layer) is None
        base_only = run(plain, x)
        with fused_adapters(plain):
            again = run(plain, x)
        torch.testing.assert_close(again[0], base_only[0], rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(again[1][0], base_only[1][0], rtol=1e-6, atol=1e-6)
    plain.add_adapter("second", plain.peft_config["default"])
    plain.base_model.set_adapter(["default", "second"])
    assert sole_adapter(layer) is None  # two adapters at once: PEFT sums them itself


def test_a_merged_layer_is_not_fused_twice() -> None:
    model = lora_model()
    x = torch.randn(4, 24, generator=torch.Generator().manual_seed(5))
    expected = run(model, x)
    model.merge_adapter()
    layer = next(m for m in model.modules() if qualifies(m))
    assert sole_adapter(layer) is None
    with torch.no_grad(), fused_adapters(model):
        torch.testing.assert_close(model(x), expected[0], rtol=1e-5, atol=1e-5)


def test_auto_means_a_gpu_and_never_fsdp() -> None:
    assert wanted({}, "cuda:0") and not wanted({}, "cpu")
    assert wanted({"fused_adapters": True}, "cpu") and not wanted({"fused_adapters": False}, "cuda")
    assert not wanted({"fused_adapters": True, "strategy": "fsdp"}, "cuda")


def test_with_bitsandbytes_4bit_layers_a_training_step_has_peft_s_gradients(tmp_path: Path) -> None:
    """QLoRA's layers (PEFT's Linear4bit over bitsandbytes' NF4 weights, here on the CPU) under bf16
    autocast, with the lean MLPs as training runs them: the loss and adapter gradients of PEFT's forward.
    (benchmarks/swaps_gpu.py checks the same on a GPU.)"""
    pytest.importorskip("bitsandbytes")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig

    from ftp.backends.local.gated_mlp import lean_mlp

    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=256)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=quant, dtype=torch.bfloat16,
                                                 device_map="cpu")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    model.train()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    for m in model.modules():
        if hasattr(m, "cast_input_dtype_enabled"):
            m.cast_input_dtype_enabled = False
    assert type(model.base_model.model.model.layers[0].mlp.gate_proj).__name__ == "Linear4bit"
    ids = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(1))

    def step() -> tuple[float, list[torch.Tensor]]:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return float(loss), [p.grad.float().clone() for _, p in sorted(model.named_parameters()) if p.requires_grad]

    loss, grads = step()
    with lean_mlp(model) as mlps, fused_adapters(model) as layers:
        assert (mlps, layers) == (2, 14)
        loss2, grads2 = step()
    assert loss2 == pytest.approx(loss, rel=1e-4)
    worst = max(float((a - b).norm() / b.norm()) for a, b in zip(grads2, grads))
    assert len(grads) == 28 and worst < 0.03  # bf16 rounding (the fused sum is rounded once); a wrong path is ~1


def test_compiled_layers_with_both_forwards_train_like_eager_ones(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Where graphs cannot run, ``compile`` traces each decoder layer: through the fused adapters' checks
    and the lean MLP's autograd function too, learning what PEFT's and transformers' eager modules learn.
    (aot_eager traces as inductor does, without compiling C++.)"""
    from conftest import train_directly

    settings = {"method": "lora", "max_steps": 3, "batch_size": 4}
    plain, _, _ = train_directly(tiny_model_dir, tmp_path / "a", settings, {"devices": "cpu"})
    both = {"devices": "cpu", "fused_adapters": True, "lean_mlp": True, "compile": True,
            "compile_backend": "aot_eager"}
    from torch._dynamo.utils import counters

    counters.clear()
    compiled, _, _ = train_directly(tiny_model_dir, tmp_path / "b", settings, both)
    assert {"fused_adapters", "lean_mlp"} <= set(compiled.events)
    assert counters["stats"]["unique_graphs"] > 0  # the layers really were traced
    losses = [[r["train_loss"] for r in ctx.rows if "train_loss" in r] for ctx in (plain, compiled)]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-4)
