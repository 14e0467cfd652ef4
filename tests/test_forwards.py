"""The training-time forwards together (backends/local/forwards.py and the three that use it): when each
is on, and that a training run with each takes the same steps and leaves the library's modules behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftp.backends.local.forwards import wanted


def test_auto_means_a_gpu() -> None:
    assert wanted("auto", "cuda:0") and not wanted("auto", "cpu")
    assert wanted(True, "cpu") and not wanted(False, "cuda")


@pytest.mark.parametrize(("setting", "rel"), [("fused_norms", 1e-5), ("lean_mlp", 1e-6), ("fused_adapters", 1e-5)])
def test_training_with_a_swapped_forward_takes_the_same_steps(tiny_model_dir: Path, tmp_path: Path, setting: str,
                                                             rel: float) -> None:
    """On the CPU, where ``auto`` keeps transformers' and PEFT's modules, the setting ``true`` trains to the
    same losses, and the kept model has the library's own modules again."""
    from conftest import train_directly

    settings = {"method": "lora", "max_steps": 3, "batch_size": 4}
    plain, _, _ = train_directly(tiny_model_dir, tmp_path / "a", settings, {"devices": "cpu"})
    swapped, _, trained = train_directly(tiny_model_dir, tmp_path / "b", settings, {"devices": "cpu", setting: True})
    assert setting in swapped.events and setting not in plain.events
    losses = [[r["train_loss"] for r in ctx.rows if "train_loss" in r] for ctx in (plain, swapped)]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=rel)
    assert not any("forward" in vars(m) for m in trained.model.modules())
