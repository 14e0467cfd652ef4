"""Adapters stepped as one flat tensor (backends/local/flat.py) train exactly as tensor by tensor."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_flat_adapters_train_like_separate_tensors(tiny_model_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from conftest import train_directly
    from ftp.backends.local import training

    train = {"method": "lora", "max_steps": 3, "batch_size": 4, "optimizer": "adamw", "weight_decay": 0.1,
             "warmup_ratio": 0.0}
    _, flat_result, flat = train_directly(tiny_model_dir, tmp_path / "flat", train)
    monkeypatch.setattr(training, "FLATTEN", False)
    _, plain_result, plain = train_directly(tiny_model_dir, tmp_path / "plain", train)
    flat_weights = {n: p for n, p in flat.model.named_parameters() if p.requires_grad}
    plain_weights = {n: p for n, p in plain.model.named_parameters() if p.requires_grad}
    assert flat_weights.keys() == plain_weights.keys() and len(flat_weights) > 2
    moved = 0
    for name, p in plain_weights.items():
        assert torch.allclose(flat_weights[name], p, atol=1e-6), name
        moved += int(not torch.equal(p, torch.zeros_like(p)))
    assert moved > 0  # lora_B starts at zero: the steps changed it
    assert abs(flat_result.metrics["train_loss"] - plain_result.metrics["train_loss"]) < 1e-6


def test_flattened_tensors_are_views_stepped_through_one_gradient() -> None:
    import torch

    from ftp.backends.local.flat import ALIGN, flatten

    layer = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2))
    before = [p.detach().clone() for p in layer.parameters()]
    trainable = flatten(list(layer.parameters()))
    (whole,) = trainable.params
    assert all(torch.equal(p, b) for p, b in zip(layer.parameters(), before))  # values kept
    assert all(p.untyped_storage().data_ptr() == whole.untyped_storage().data_ptr() for p in layer.parameters())
    assert all((p.data_ptr() - whole.data_ptr()) % (ALIGN * 4) == 0 for p in layer.parameters())
    layer(torch.ones(4, 3)).sum().backward()
    trainable.gather()
    expected = torch.cat([torch.cat([p.grad.reshape(-1), torch.zeros(-p.numel() % ALIGN)])
                          for p in layer.parameters()])
    assert torch.equal(whole.grad, expected)
    optimiser = torch.optim.SGD(trainable.params, lr=1.0)
    optimiser.step()
    for p, b in zip(layer.parameters(), before):  # the one step moved every layer tensor by its own gradient
        assert torch.allclose(p, b - p.grad)
    trainable.zero_grad(optimiser)
    assert whole.grad is None and all(p.grad is None for p in layer.parameters())


def test_tensors_of_different_dtypes_are_left_alone() -> None:
    import torch

    from ftp.backends.local.flat import flatten

    params = [torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(3, dtype=torch.float64))]
    trainable = flatten(params)
    assert trainable.params == params and not trainable.views
