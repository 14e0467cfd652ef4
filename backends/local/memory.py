"""``ftp plan``: predict the peak memory of local training from the model's config, without loading weights.

Nothing here imports transformers or reads a weight file: the model's shape comes from its config.json
(a local folder, the converted cache of a built-in model, or a small table of known built-in configs).

What training holds (see training.py / modeling.py), in bytes, with ``P`` parameters, ``T`` trainable ones,
``d`` the training dtype's width (fp32 4 on CPU, bf16 2 on CUDA), ``b`` batch size, ``s`` max_seq_length, and
``t`` the tokens of a large micro-batch of the training data (data_lengths.py: ``b`` examples in one packed
row, or ``b`` rows padded to the longest; ``b * s`` when the data is not at hand, the bound also reported):

- **weights**: ``P * d``; QLoRA: linear layers inside the decoder in 4-bit NF4 with double quantisation
  (0.5 byte + 8-bit absmax per 64 weights + fp32 second-level constant per 256 blocks ~ 0.516 byte),
  embeddings, norms and an untied lm_head in the compute dtype.
- **lora adapters**: ``r * (in + out)`` per targeted linear (``all-linear`` = q, k, v, o, gate, up, down in every
  layer; plus ``out`` for DoRA's magnitude), in fp32 (PEFT keeps adapters in fp32).
- **gradients**: one per trainable parameter, in its dtype (fp32 adapters; ``d`` for full fine-tuning).
- **optimiser**: AdamW keeps exp_avg and exp_avg_sq like the parameter (2 x 4 bytes for fp32 adapters,
  2 x ``d`` for full); paged 8-bit AdamW 2 x 1 byte.
- **activations** (no gradient checkpointing): per layer and per token, in elements of ``d``:
  ``2h`` per RMSNorm (input and normalised output; Llama 2 per layer, Gemma 2/3 4), q/k-norms ``2(q+kv)``
  where the model has them, attention ``q + 2kv`` (SDPA inputs) ``+ q`` (o_proj input), MLP ``4i`` (gate and
  up outputs, the activation, the product fed to down_proj). On CPU, SDPA's math path also keeps the
  softmax (``heads * s`` per token, fp32). LoRA dropout > 0 keeps a dropped copy of each targeted input
  (``in`` elements + a 1-byte mask) and every adapter its ``r``-wide middle. Plus ``3h`` per token outside
  the layers (embedding output, final norm). Times ``t``. With gradient checkpointing: ``h`` per layer
  and token (the saved layer inputs) plus one layer's full activations, recomputed in backward.
  This is the Korthikanti et al. (2022) ``(34h + 5 a s) s b`` per-layer estimate, re-derived for gated MLPs,
  GQA, and no dropout in the base model.
- **logits**: only answer positions are scored (``0.3 t`` of them), a chunk of ``2**26 / vocab`` positions
  (``2**23 / vocab`` on a GPU) at a time (loss.py), so at most one chunk's ``vocab``-wide rows exist, times (``d`` for the logits, + 4 for the
  fp32 copy when ``d`` < 4, + 4 for cross-entropy's log-softmax, + 4 for its gradient in backward).
- **overhead**: CUDA context and allocator slack 0.5 GiB; Python, torch and the tokenizer 0.3 GiB on CPU.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ftp.config.model_source import model_source
from ftp.errors import UserError
from ftp.types import MemoryPlan, TrainRequest

from .data_lengths import example_lengths, micro_batch
from .modeling import CHUNK_ELEMENTS, GPU_CHUNK_ELEMENTS

GIB = 2**30
ANSWER_FRACTION = 0.3  # answers are assumed to be ~30% of max_seq_length
FIT_FRACTION = 0.9  # plan to use at most 90% of the device
# On a CPU the batch-dependent memory measured 1.65x the formula (Gemma 3 270M LoRA, batch 4 and 8 at
# 256 tokens: 5.43 and 10.07 GiB measured): backward temporaries, attention and gelu copies and the
# allocator's slack. The plan applies it so that it errs on the safe side; see benchmarks/README.md.
CPU_MEASURED_FACTOR = 1.65
OVERHEAD_GIB = {"cuda": 0.5, "cpu": 0.3}
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # 4-bit weight + 8-bit absmax per block of 64 + fp32 per 256 blocks
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# Configs of built-in models, for when the converted cache does not exist yet (planning never converts).
KNOWN_CONFIGS: dict[str, dict[str, Any]] = {
    "gemma-3-270m": {"model_type": "gemma3_text", "hidden_size": 640, "num_hidden_layers": 18,
                     "intermediate_size": 2048, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 256,
                     "vocab_size": 262144, "tie_word_embeddings": True, "attention_bias": False},
}
FOUR_NORM_TYPES = {"gemma2", "gemma3", "gemma3_text"}  # pre/post attention and pre/post feed-forward norms
QK_NORM_TYPES = {"gemma3", "gemma3_text", "qwen3"}
QKV_BIAS_TYPES = {"qwen2"}


@dataclass(frozen=True)
class Shape:
    """What the parameter and activation counts need from a decoder-only transformer's config."""

    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    model_type: str = "llama"
    attention_bias: bool = False
    mlp_bias: bool = False

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def norms_per_layer(self) -> int:
        return 4 if self.model_type in FOUR_NORM_TYPES else 2

    @property
    def qk_norm(self) -> bool:
        return self.model_type in QK_NORM_TYPES

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer in one decoder layer."""
        h, i = self.hidden, self.intermediate
        return {"q_proj": (h, self.q_dim), "k_proj": (h, self.kv_dim), "v_proj": (h, self.kv_dim),
                "o_proj": (self.q_dim, h), "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def shape_from_config(config: dict[str, Any]) -> Shape:
    cfg = config.get("text_config") or config
    try:
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        return Shape(hidden=hidden, layers=int(cfg["num_hidden_layers"]), intermediate=int(cfg["intermediate_size"]),
                     heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
                     head_dim=int(cfg.get("head_dim") or hidden // heads), vocab=int(cfg["vocab_size"]),
                     tied=bool(cfg.get("tie_word_embeddings", config.get("tie_word_embeddings", True))),
                     model_type=str(cfg.get("model_type", "llama")),
                     attention_bias=bool(cfg.get("attention_bias", False)), mlp_bias=bool(cfg.get("mlp_bias", False)))
    except KeyError as exc:
        raise UserError(f"model config has no {exc.args[0]!r}: ftp plan knows decoder-only transformers "
                        "(Llama, Gemma, Qwen, Mistral families)") from None


def load_config(base: str) -> dict[str, Any]:
    """The model's config.json, without converting a built-in model or touching weights."""
    from .models import folder_of

    name = model_source(base).builtin
    if name is not None:
        cached = folder_of(base) / "config.json"
        if cached.exists():
            return json.loads(cached.read_text(encoding="utf-8"))
        if name in KNOWN_CONFIGS:
            return dict(KNOWN_CONFIGS[name])
        raise UserError(f"model.base: no config known for {base}")
    path = Path(base) / "config.json"
    if not path.exists():
        raise UserError(f"model.base: {base} has no config.json")
    return json.loads(path.read_text(encoding="utf-8"))


def count_parameters(shape: Shape) -> dict[str, int]:
    """Parameters by part, as ``sum(p.numel() for p in model.parameters())`` counts them (tied weights once)."""
    h, L = shape.hidden, shape.layers
    lin = shape.linears()
    attention = sum(i * o for name, (i, o) in lin.items() if name in LINEARS[:4])
    if shape.attention_bias:
        attention += shape.q_dim + 2 * shape.kv_dim + h
    elif shape.model_type in QKV_BIAS_TYPES:
        attention += shape.q_dim + 2 * shape.kv_dim
    mlp = sum(i * o for name, (i, o) in lin.items() if name in LINEARS[4:])
    if shape.mlp_bias:
        mlp += 2 * shape.intermediate + h
    norms = shape.norms_per_layer * h + (2 * shape.head_dim if shape.qk_norm else 0)
    return {"embeddings": shape.vocab * h, "attention": L * attention, "mlp": L * mlp,
            "norms": L * norms + h, "lm_head": 0 if shape.tied else shape.vocab * h}


def lora_targets(shape: Shape, target_modules: Any) -> list[tuple[int, int]]:
    """(in, out) of every linear that gets an adapter, over all layers."""
    lin = shape.linears()
    if target_modules in (None, "all-linear", "all_linear"):
        names = list(LINEARS)
    elif isinstance(target_modules, str):
        names = [n for n in LINEARS if n == target_modules or target_modules.endswith(n)]
    else:
        names = [n for n in LINEARS if any(str(t) == n or str(t).endswith("." + n) for t in target_modules)]
    return [lin[n] for n in names] * shape.layers


@dataclass(frozen=True)
class Setup:
    """The knobs of a training run that change its memory."""

    method: str
    batch: int
    seq: int
    accum: int
    r: int
    dropout: float
    targets: Any
    dora: bool
    optimizer: str
    checkpointing: bool
    device: str
    dtype_name: str
    lengths: tuple[int, ...] = ()  # token counts of the training examples; empty: every one at ``seq``
    packed: bool = False
    pack_tokens: int | None = None  # train.pack_tokens: every micro-batch is one row of up to this many tokens

    def micro_batch(self) -> tuple[int, int]:
        """(rows, row length) of the largest micro-batch to budget for."""
        if self.pack_tokens:
            return 1, self.pack_tokens
        return micro_batch(self.lengths, self.batch, self.seq, self.packed)


def estimate(shape: Shape, setup: Setup) -> dict[str, float]:
    """Bytes by part for one training run (see the module docstring for the formulas)."""
    d = DTYPE_BYTES[setup.dtype_name]
    params = count_parameters(shape)
    total_params = sum(params.values())
    parts: dict[str, float] = {}
    if setup.method == "qlora":
        quantised = params["attention"] + params["mlp"]
        parts["weights"] = quantised * NF4_BYTES + (total_params - quantised) * d
    else:
        parts["weights"] = total_params * d

    targets = lora_targets(shape, setup.targets) if setup.method != "full" else []
    if setup.method == "full":
        trainable, trainable_bytes = total_params, d
    else:
        trainable = sum(setup.r * (i + o) + (o if setup.dora else 0) for i, o in targets)
        trainable_bytes = 4
        parts["lora adapters"] = trainable * 4
    parts["gradients"] = trainable * trainable_bytes
    state_bytes = 1 if setup.optimizer == "paged_adamw_8bit" else trainable_bytes
    parts["optimizer states"] = 2 * trainable * state_bytes

    rows, row_len = setup.micro_batch()
    h, tokens = shape.hidden, rows * row_len
    layer = (shape.norms_per_layer * 2 * h + (2 * (shape.q_dim + shape.kv_dim) if shape.qk_norm else 0)
             + 2 * shape.q_dim + 2 * shape.kv_dim + 4 * shape.intermediate)
    layer_bytes = layer * d
    if setup.device == "cpu":  # SDPA's math path keeps the softmax probabilities
        layer_bytes += shape.heads * min(row_len, setup.seq) * 4  # per example: packed rows attend block-diagonally
    per_layer_targets = targets[:len(targets) // shape.layers] if targets else []
    for i, _ in per_layer_targets:
        layer_bytes += setup.r * d + (i * (d + 1) if setup.dropout > 0 else 0)
    if setup.checkpointing:
        acts = tokens * (shape.layers * h * d + layer_bytes)
    else:
        acts = tokens * shape.layers * layer_bytes
    slack = CPU_MEASURED_FACTOR if setup.device == "cpu" else 1.0
    parts["activations"] = (acts + tokens * 3 * h * d) * slack

    answers = max(1, round(tokens * ANSWER_FRACTION))
    logit_bytes = d + (4 if d < 4 else 0) + 4 + 4
    chunk = CHUNK_ELEMENTS if setup.device == "cpu" else GPU_CHUNK_ELEMENTS
    scored = min(answers, max(1, chunk // shape.vocab))
    parts["logits"] = scored * shape.vocab * logit_bytes * slack
    parts["overhead"] = OVERHEAD_GIB[setup.device] * GIB
    return parts


def device_memory_gib(device: str) -> float | None:
    """Total memory of the device training would use: the GPU's, or this machine's RAM."""
    try:
        if device == "cuda":
            import torch

            return torch.cuda.mem_get_info()[1] / GIB
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, RuntimeError, AttributeError):
        return None


def _gib(parts: dict[str, float]) -> dict[str, float]:
    return {k: round(v / GIB, 6) for k, v in parts.items()}


def _total(shape: Shape, setup: Setup) -> float:
    return sum(estimate(shape, setup).values()) / GIB


def suggestions(shape: Shape, setup: Setup, budget: float) -> list[str]:
    """Changes that bring the plan under ``budget`` GiB, largest effect first; a smaller model last."""
    options: list[tuple[float, str]] = []
    if setup.method != "qlora":
        alt = replace(setup, method="qlora", optimizer="paged_adamw_8bit")
        options.append((_total(shape, alt), "train.method: qlora (4-bit base weights, paged 8-bit AdamW)"))
    if setup.batch > 1:
        batch, accum = setup.batch, setup.accum
        while batch > 1:
            batch, accum = max(1, batch // 2), accum * 2
            if _total(shape, replace(setup, batch=batch)) <= budget:
                break
        options.append((_total(shape, replace(setup, batch=batch)),
                        f"train.batch_size: {batch} with train.gradient_accumulation_steps: {accum} "
                        f"(same {setup.batch * setup.accum} examples per step)"))
    if not setup.checkpointing:
        options.append((_total(shape, replace(setup, checkpointing=True)),
                        "train.gradient_checkpointing: true (recompute activations in backward, ~30% slower)"))
    if setup.seq > 128:
        seq = setup.seq
        while seq > 128:
            seq = max(128, seq // 2)
            if _total(shape, replace(setup, seq=seq)) <= budget:
                break
        options.append((_total(shape, replace(setup, seq=seq)),
                        f"model.max_seq_length: {seq} (longer examples are truncated)"))
    if setup.method != "full" and setup.r > 4:
        r = max(4, setup.r // 4)
        options.append((_total(shape, replace(setup, r=r)), f"train.lora.r: {r}"))
    options.sort(key=lambda o: o[0])
    tips = [f"{text}: ~{total:.2f} GiB" for total, text in options]
    tips.append("model.base: a smaller model")
    return tips


def setup_for(request: TrainRequest) -> Setup:
    from .modeling import placement

    train, lora, settings = request.settings, request.settings.lora, request.backend_settings
    where = placement(settings.get("devices", "auto"), settings.get("dtype", "auto"))
    return Setup(method=train.method, batch=train.batch_size, seq=request.model.max_seq_length,
                 accum=train.gradient_accumulation_steps, r=lora.r, dropout=lora.dropout, targets=lora.target_modules,
                 dora=lora.dora, optimizer=train.resolved_optimizer(), checkpointing=train.gradient_checkpointing,
                 device=where.device, dtype_name=where.dtype_name, packed=train.packing,
                 pack_tokens=train.resolved_pack_tokens())


def plan_memory(request: TrainRequest) -> MemoryPlan:
    """Predicted peak memory of training ``request`` on this machine, by part, and whether it fits.

    The prediction budgets the micro-batches this data makes; the bound with every example at
    ``max_seq_length`` comes with it, for data that may change."""
    shape = shape_from_config(load_config(request.base_model))
    worst = setup_for(request)
    worst_gib = _total(shape, worst)
    setup, basis = worst, "every example at model.max_seq_length"
    data = request.train if request.train is not None else None
    if data is not None and data.path.exists():
        lengths, exact = example_lengths(data, request.base_model)
        if lengths:
            setup = replace(worst, lengths=lengths)
            rows, row_len = setup.micro_batch()
            basis = (f"micro-batches of this data up to {rows} x {row_len} tokens (99th percentile of random draws; "
                     f"{'counted with the model tokenizer' if exact else 'tokens estimated from bytes'})")
    parts = estimate(shape, setup)
    total = sum(parts.values()) / GIB
    device_gib = device_memory_gib(setup.device)
    fits = None if device_gib is None else total <= FIT_FRACTION * device_gib
    tips = suggestions(shape, setup, FIT_FRACTION * device_gib) if fits is False and device_gib else []
    return MemoryPlan(device=setup.device, device_gib=None if device_gib is None else
                      round(device_gib, 2), parts_gib=_gib(parts), total_gib=round(total, 6), fits=fits,
                      suggestions=tips, basis=basis, worst_case_gib=round(worst_gib, 6))
