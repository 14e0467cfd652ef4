"""Loading models and tokenizers on the chosen device, batching, and the answer-only loss.

Batches carry the positions that predict a trained token, found on the CPU while collating, so the
loss (loss.py) sends only those to the output layer and the GPU never waits for a ``nonzero``. With
a 262k-token vocabulary the output layer is most of a small model's compute: this makes CPU
training of Gemma 3 270M about twice as fast.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftp.errors import UserError

from .chat import IGNORE, Encoded

CHUNK_ELEMENTS = 2**26  # logits scored at once by the loss (loss.py): 256 MiB in fp32, whatever the vocabulary
# On a GPU memory is what runs out, and recomputing a chunk's logits in backward costs little on tensor
# cores: 8M logits (~130 MiB with their fp32 copy, log-softmax and gradient) instead of 64M (~1 GiB) cut
# 0.4 GiB from an 8B QLoRA step's peak. A CPU keeps the big chunk: there the output layer is most of a
# small model's compute and recomputing it would slow training down.
GPU_CHUNK_ELEMENTS = 2**23


@dataclass(frozen=True)
class Placement:
    device: str
    dtype_name: str  # what matmuls compute in (autocast)
    weights: str = ""  # what the loaded weights are stored in; empty: the compute dtype

    @property
    def dtype(self) -> Any:
        import torch

        return getattr(torch, self.weights or self.dtype_name)


def quiet_libraries() -> None:
    """Keep transformers/peft/bitsandbytes chatter out of ftp's progress display (run.log keeps ours)."""
    import logging
    import os
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\..*")
    warnings.filterwarnings("ignore", message=r".*(gemm_4bit|kernels-community|requires_grad=True to a scalar).*")
    for name in ("transformers", "peft", "bitsandbytes", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def placement(devices: str | int = "auto", dtype: str = "auto", weights: str = "compute") -> Placement:
    """CUDA with bf16 where it exists, else CPU with float32 (bf16 matmuls are slow on most CPUs)."""
    import torch

    want = str(devices)
    if want in ("auto", "cuda") or want.isdigit():  # a number: GPUs, one per process (see distributed.py)
        if torch.cuda.is_available():
            device = "cuda"
        elif want == "auto":
            device = "cpu"
        else:
            raise UserError(f"backends.local.devices: {want}, but no CUDA device is visible; use auto or cpu")
    else:
        device = "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    return Placement(device, dtype, "float32" if weights == "float32" and dtype != "float32" else "")


def load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "is_fast", False):
        raise UserError(f"{path}: ftp needs a fast tokenizer (tokenizer.json) to locate answer tokens")
    return tokenizer


# What AutoTokenizer.from_pretrained reads from a folder (besides additional_chat_templates/)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "vocab.txt")
_SHARED: dict[str, "weakref.ref[Any]"] = {}  # tokenizer_fingerprint -> a tokenizer loaded in this process
_SHARED_LOCK = threading.Lock()


def tokenizer_fingerprint(path: Path) -> str | None:
    """A digest of the files a folder's tokenizer is built from (their names and bytes): two folders
    with the same fingerprint load the same tokenizer. None without tokenizer.json (ftp needs it)."""
    if not (path / "tokenizer.json").is_file():
        return None
    extra = path / "additional_chat_templates"
    files = [path / name for name in TOKENIZER_FILES] + (sorted(extra.iterdir()) if extra.is_dir() else [])
    digest = hashlib.sha256()
    for file in files:
        if file.is_file():
            digest.update(f"{file.relative_to(path)}\0{file.stat().st_size}\0".encode())
            with file.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def shared_tokenizer(path: Path) -> Any:
    """``load_tokenizer(path)``, or the tokenizer already loaded in this process from identical files
    (an adapter folder holds a copy of its base model's, and every adapter on one base the same copy):
    reading Gemma 3's 262k-token vocabulary takes 2-4 s. The object is shared, so callers must not
    change it (``padding_side`` and the like go in each call); while no one holds it, it is freed."""
    key = tokenizer_fingerprint(path)
    if key is None:
        return load_tokenizer(path)
    with _SHARED_LOCK:
        ref = _SHARED.get(key)
        found = ref() if ref is not None else None
        if found is None:
            found = load_tokenizer(path)
            _SHARED[key] = weakref.ref(found)
            for stale in [k for k, r in _SHARED.items() if r() is None]:
                del _SHARED[stale]
        return found


def load_model(path: Path, where: Placement) -> Any:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=where.dtype, local_files_only=True)
    return model.to(where.device)


@dataclass
class Batch:
    input_ids: Any
    attention_mask: Any
    labels: Any
    tokens: int
    position_ids: Any = None  # set for packed rows: positions restart at 0 for each example
    positions: Any = None  # sequence positions whose next token is trained (any row)
    targets: Any = None  # the next tokens at those positions, one row per batch row (IGNORE where not trained)
    trained: int = 0
    starts: Any = None  # packed rows: where each example starts, and the row's end (int32, for attention.py)
    longest: int = 0  # packed rows: the longest example's length

    def to(self, device: str) -> "Batch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.labels), self.tokens,
                     move(self.position_ids), move(self.positions), move(self.targets), self.trained,
                     move(self.starts), self.longest)


def _with_targets(batch: Batch, device: str) -> Batch:
    """Find the trained positions while the batch is still on the CPU, then move it."""
    targets = batch.labels[:, 1:]
    batch.positions = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    batch.targets = targets[:, batch.positions]
    batch.trained = int((batch.targets != IGNORE).sum())
    return batch.to(device)


def collate(rows: list[Encoded], pad_id: int, device: str) -> Batch:
    import torch

    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.input_ids)
        ids[i, :n] = torch.tensor(r.input_ids)
        labels[i, :n] = torch.tensor(r.labels)
        mask[i, :n] = 1
    return _with_targets(Batch(ids, mask, labels, int(mask.sum())), device)


def collate_packed(rows: list[Encoded], device: str, pad_id: int = 0, multiple: int = 0, fill: bool = False) -> Batch:
    """All rows in one padding-free sequence. Positions restart per example, and with no attention mask
    transformers builds a block-diagonal causal mask from them, so no example attends to another. The first
    token of each example is never a target, so the boundary between examples is never trained.

    ``multiple`` rounds the row up with a filler "example" of pad tokens (its own positions, never
    trained): a few distinct lengths instead of a new one at every step, so attention kernels that
    plan per shape (cuDNN) and compiled layers reuse their plans. ``fill``: a filler even when the row
    ends on a multiple (then ``multiple`` tokens of it), so every row of as many examples has as many
    offsets (a CUDA graph's shapes are fixed: graphs.py)."""
    import torch

    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    starts = [0]
    for r in rows:
        ids += r.input_ids
        labels += [IGNORE] + r.labels[1:]
        positions += range(len(r.input_ids))
        starts.append(len(ids))
    real = len(ids)
    filler = (-real % multiple or (multiple if fill else 0)) if multiple else 0
    ids += [pad_id] * filler
    labels += [IGNORE] * filler
    positions += range(filler)
    if filler:
        starts.append(len(ids))
    longest = max(b - a for a, b in zip(starts, starts[1:]))
    as_row = lambda xs: torch.tensor([xs], dtype=torch.long)  # noqa: E731
    return _with_targets(Batch(as_row(ids), None, as_row(labels), real, as_row(positions),
                               starts=torch.tensor(starts, dtype=torch.int32), longest=longest), device)


def causal_lm(model: Any) -> Any:
    """The transformers model inside a PEFT model (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_layers(model: Any) -> list[Any]:
    """The repeated blocks of a causal LM (inside PEFT and the loss wrapper): the unit worth compiling."""
    return list(getattr(causal_lm(model).get_decoder(), "layers", []))


# Measured on H200s (benchmarks/results/qlora_*b*.json, the quality benchmark): compiling the layers costs
# 60-90 s of wall time (8B: 87-107 s compiled against 17-18 s eager for 20 steps), and saves 0.10-0.21 s
# per step on the 8B shape and 0.12 s on the 1B shape: break-even after 400-900 steps. On Gemma 3 270M a
# 300-step run took 150-166 s compiled against 67 s eager. Shorter runs stay eager.
COMPILE_MIN_STEPS = 1000


def wants_compile(setting: str | bool, device: str, steps: int, graphs: bool = False) -> bool:
    """``auto`` compiles on CUDA for runs long enough to repay the compile time; never on a CPU by
    default, where compiling costs minutes; never when the steps will replay as CUDA graphs (``graphs``),
    which run eager layers faster than compiled layers run (benchmarks/README.md) and cannot hold both."""
    if setting == "auto":
        if graphs:
            return False
        import importlib.util

        return (device.startswith("cuda") and steps >= COMPILE_MIN_STEPS
                and importlib.util.find_spec("triton") is not None)
    return bool(setting)


def compile_layers(model: Any, backend: str = "inductor") -> int:
    """Compile each decoder layer (regional compilation).

    Every layer runs the same code, so one compiled graph serves them all (two for models that
    alternate sliding-window and global attention) and compiling takes seconds, not the minutes of a
    whole model. Fused element-wise kernels and no Python between them are what small and
    4-bit models need: eager PyTorch spends most of their step launching kernels. Dynamic shapes,
    because packed rows differ in length at every step.
    """
    import torch._dynamo

    # A compiler failure must cost speed, not the run: seen with inductor and transformers 5.24's
    # Llama layers on an H200 ("Node ... was invalid, but is output"). Dynamo then logs the error
    # and runs that layer eagerly.
    torch._dynamo.config.suppress_errors = True
    layers = decoder_layers(model)
    for layer in layers:
        layer.compile(backend=backend, dynamic=True)
    return len(layers)


def uncompile_layers(model: Any) -> None:
    """Back to eager for generation, whose key-value cache would make the compiled layers recompile."""
    for layer in decoder_layers(model):
        layer._compiled_call_impl = None


def peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
