"""RMSNorm through one ``rms_norm`` call while training (backends/local/norms.py): the output and gradients of
transformers' own modules, for every norm class it takes; classes whose arithmetic differs keep theirs."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
import torch

from ftp.backends.local.norms import agrees, convention, fused_norms

FAMILIES = ["llama", "qwen2", "qwen3", "mistral", "phi3", "granite", "smollm3", "olmo2", "gemma", "gemma2", "gemma3"]


def norm_of(family: str, dim: int = 48) -> Any:
    module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    cls = next(c for n, c in vars(module).items() if n.endswith("RMSNorm") and isinstance(c, type))
    norm = cls(dim, eps=1e-6)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(dim, generator=torch.Generator().manual_seed(1)) * 0.3 + 0.5)
    return norm


def outputs_and_grads(norm: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    norm.zero_grad()
    x = x.detach().clone().requires_grad_(True)
    y = norm(x)
    (y.float() * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    return y.detach(), x.grad.detach(), norm.weight.grad.detach()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("family", FAMILIES)
def test_a_fused_norm_has_the_output_and_gradients_of_the_original(family: str, dtype: torch.dtype) -> None:
    norm = norm_of(family).to(dtype)
    x = (torch.randn(2, 5, 48, generator=torch.Generator().manual_seed(2)) * 4).to(dtype)
    expected = outputs_and_grads(norm, x)
    with fused_norms(norm) as count:
        got = outputs_and_grads(norm, x)
        used = "forward" in vars(norm)
    assert "forward" not in vars(norm)  # the module's own forward again after the block
    assert count == int(used)
    if family in ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma3"):
        assert used, f"{type(norm).__name__} should run fused"
    tolerance = 1e-5 if dtype == torch.float32 else 2e-2
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype
        assert torch.allclose(a.float(), b.float(), rtol=tolerance, atol=tolerance)


def test_the_conventions_differ_so_each_norm_keeps_its_own() -> None:
    llama, gemma = norm_of("llama"), norm_of("gemma3")
    assert convention(llama) is not None and convention(gemma) is not None
    assert convention(llama) is not convention(gemma)
    assert not agrees(gemma, convention(llama))  # 1 + weight against weight: refused by the probe
    assert not agrees(llama, convention(gemma))


class OffsetRMSNorm(torch.nn.Module):
    """Looks like a Llama norm (its name, ``weight``, ``variance_epsilon``) but adds a bias: not taken."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(dim))
        self.variance_epsilon = 1e-6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype) + 0.1


def test_a_norm_whose_arithmetic_differs_keeps_its_forward() -> None:
    model = torch.nn.Sequential(OffsetRMSNorm(16), norm_of("llama", 16))
    with fused_norms(model) as count:
        assert count == 1 and "forward" not in vars(model[0]) and "forward" in vars(model[1])
