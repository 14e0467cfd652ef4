"""Mid-training checkpoints: trainable weights, optimiser, RNG, data position and the curve so far.

Written to a sibling folder and swapped in, so a SIGKILL at any moment leaves either the previous
checkpoint or the new one. A resumed train step continues from it: the same step count, learning-rate
schedule and data order, no step trained twice, and the metrics rows up to it re-logged.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE = "loop.json"


@dataclass
class LoopState:
    step: int = 0
    epoch: int = 0
    cursor: int = 0
    order: list[int] = field(default_factory=list)
    best: float = float("inf")
    best_step: int | None = None
    bad_evals: int = 0
    tokens_seen: int = 0
    trained_tokens: int = 0
    elapsed: float = 0.0
    train_curve: list[list[float]] = field(default_factory=list)
    val_curve: list[list[float]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # metrics rows logged so far
    loss_scale: dict[str, Any] = field(default_factory=dict)  # float16's GradScaler state (precision.py)
    fingerprint: str = ""


def fingerprint(request: Any) -> str:
    """What must match for a checkpoint to be resumable: data, base model, method, hyperparameters."""
    key = json.dumps({"train": request.train.sha256, "base": request.base_model, "method": request.method,
                      "hp": request.hyperparameters, "strategy": request.backend_settings.get("strategy", "ddp")},
                     sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()


def trainable_state(model: Any) -> dict[str, Any]:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save(folder: Path, state: LoopState, weights: dict[str, Any], optimiser_state: dict[str, Any]) -> None:
    """Write what ``trainable_state`` and the optimiser's state dict (or their gathered FSDP forms) hold."""
    import torch
    from safetensors.torch import save_file

    tmp = folder.parent / f".{folder.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(weights, str(tmp / "trainable.safetensors"))
    torch.save({"optimiser": optimiser_state, "torch_rng": torch.get_rng_state(),
                "python_rng": random.getstate()}, tmp / "optimiser.pt")
    (tmp / STATE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    old = folder.parent / f".{folder.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def load(folder: Path, fp: str, model: Any, optimiser: Any, sharded: bool = False) -> LoopState | None:
    """The saved state, restored into ``model`` and ``optimiser``; None when there is none that fits."""
    old = folder.parent / f".{folder.name}.old"
    if not (folder / STATE).exists() and (old / STATE).exists():
        folder = old  # killed between save()'s two renames: the previous checkpoint is whole
    if not (folder / STATE).exists():
        return None
    state = LoopState(**json.loads((folder / STATE).read_text(encoding="utf-8")))
    if state.fingerprint != fp:
        return None
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(folder / "trainable.safetensors"))
    extra = torch.load(folder / "optimiser.pt", weights_only=False)
    if sharded:  # every rank reads the whole state and keeps its shard
        from torch.distributed.checkpoint.state_dict import (StateDictOptions, set_model_state_dict,
                                                             set_optimizer_state_dict)

        whole = StateDictOptions(full_state_dict=True, strict=False)
        set_model_state_dict(model, weights, options=whole)
        set_optimizer_state_dict(model, optimiser, optim_state_dict=extra["optimiser"], options=whole)
    else:
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                params[name].copy_(value.to(params[name].device, params[name].dtype))
        optimiser.load_state_dict(extra["optimiser"])
    torch.set_rng_state(extra["torch_rng"])
    random.setstate(extra["python_rng"])
    return state
