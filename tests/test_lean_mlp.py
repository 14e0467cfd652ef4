"""Gated MLPs that keep only their two projections for backward (backends/local/gated_mlp.py):
transformers' own outputs and gradients, bit for bit, for every family that writes its MLP as
``down(act(gate(x)) * up(x))``; one full-width tensor fewer kept for backward; others keep theirs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from ftp.backends.local.gated_mlp import activation, lean_mlp

FAMILIES = ["llama", "qwen2", "qwen3", "mistral", "granite", "olmo2", "gemma", "gemma2", "gemma3"]


def mlp_of(family: str) -> Any:
    config_module = importlib.import_module(f"transformers.models.{family}.configuration_{family}")
    model_module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    config_cls = next(c for n, c in vars(config_module).items() if n.endswith("Config") and isinstance(c, type)
                      and n.lower().startswith(family.replace("_", "")))
    mlp_cls = next(c for n, c in vars(model_module).items() if n.endswith("MLP") and isinstance(c, type))
    torch.manual_seed(0)
    return mlp_cls(config_cls(hidden_size=32, intermediate_size=88))


def outputs_and_grads(mlp: Any, x: torch.Tensor) -> list[torch.Tensor]:
    mlp.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    y = mlp(x)
    (y.float() * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return [y.detach(), x.grad.detach()] + [p.grad.detach().clone() for p in mlp.parameters()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_lean_mlp_has_the_output_and_gradients_of_the_original(family: str, dtype: torch.dtype) -> None:
    mlp = mlp_of(family).to(dtype)
    assert activation(mlp) in ("silu", "gelu_tanh")
    x = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(2)).to(dtype)
    expected = outputs_and_grads(mlp, x)
    with lean_mlp(mlp) as count:
        assert count == 1
        got = outputs_and_grads(mlp, x)
    assert "forward" not in vars(mlp)
    for a, b in zip(got, expected):
        assert torch.equal(a, b)  # the same operations in the same order


def test_it_keeps_one_full_width_tensor_fewer_for_backward() -> None:
    mlp = mlp_of("llama")
    x = torch.randn(7, 32, requires_grad=True)

    def kept() -> int:
        sizes: list[int] = []
        with torch.autograd.graph.saved_tensors_hooks(lambda t: sizes.append(t.numel()) or t, lambda t: t):
            mlp(x)
        return sum(1 for n in sizes if n == 7 * 88)

    plain = kept()
    with lean_mlp(mlp):
        assert kept() == plain - 1 == 3  # gate(x), up(x) and the product down keeps; not act(gate(x))


def test_an_mlp_written_otherwise_keeps_its_own() -> None:
    mlp = mlp_of("llama")
    mlp.act_fn = torch.nn.ReLU()  # neither SiLU nor GELU-tanh
    assert activation(mlp) is None
    fused_up = importlib.import_module("transformers.models.phi3.modeling_phi3")
    config = importlib.import_module("transformers.models.phi3.configuration_phi3").Phi3Config(
        hidden_size=32, intermediate_size=88)
    phi3 = fused_up.Phi3MLP(config)  # one gate_up_proj: not the shape this replaces
    with lean_mlp(torch.nn.ModuleList([mlp, phi3])) as count:
        assert count == 0


def test_a_probe_that_disagrees_keeps_the_original() -> None:
    mlp = mlp_of("llama")
    cls = type(mlp)

    class Scaled(cls):  # type: ignore[misc, valid-type]
        def forward(self, x: Any) -> Any:  # same parts, different arithmetic
            return super().forward(x) * 2

    odd = Scaled(mlp.config) if hasattr(mlp, "config") else None
    if odd is None:
        pytest.skip("this transformers' MLP keeps no config")
    with lean_mlp(odd) as count:
        assert count == 0
