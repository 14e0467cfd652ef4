"""Local training: PEFT LoRA (or QLoRA, or full fine-tuning) with answer-only loss, periodic
validation, early stopping that keeps the best adapter, and progress with tokens/s.

``train`` runs named pieces in order: ``place`` (seeds, device, ranks), ``encode_data``, ``build``
(model, loss module, optimiser), the ``Loop`` of loop.py (schedule, steps, checkpoints) driven by
``run`` with ``validate`` between steps, ``save_last`` and ``result``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.config.settings import LoraSettings
from ftp.data.sources import iter_examples
from ftp.eval.overfitting import verdict
from ftp.errors import FtpError, UserError
from ftp.types import DatasetRef, ModelRef, StepContext, TrainRequest, TrainResult

from . import models
from . import graphs
from .swaps import swap_forwards
from . import token_cache
from .precision import adapters_follow_autocast, grad_scaler
from .distributed import Dist
from .chat import ChatFormat, Encoded, chat_format, encode, show_mask
from .attention import packed
from .flat import Trainable, flatten
from .loop import Data, Loop, Parts, Phases, Schedule
from .modeling import (Placement, compile_layers, load_model, load_tokenizer, causal_lm, peak_memory_mb, placement,
                       uncompile_layers, wants_compile)

META_FILE = "ftp_model.json"


@dataclass
class Trained:
    """What stays in memory after training, so evaluation does not load the model again."""

    output_dir: Path
    model: Any
    fmt: ChatFormat
    where: Placement


@dataclass
class Curve:
    train: list[tuple[int, float]] = field(default_factory=list)
    val: list[tuple[int, float]] = field(default_factory=list)

    def verdict(self) -> str | None:
        return verdict(self.train, self.val)


def tokenise(fmt: ChatFormat, ref: DatasetRef, tokenizer_dir: Path, max_length: int, loss_on: str,
             ctx: StepContext, label: str) -> token_cache.Rows:
    """Every example with its line number, memory-mapped from the cache (written first when this exact
    tokenisation was not done before: streamed, so the examples never sit in memory as Python lists)."""
    key = token_cache.cache_key(ref.sha256, tokenizer_dir, fmt, max_length, loss_on)
    cached = token_cache.load(key)
    if cached is not None:
        ctx.reporter.event("token_cache", message=f"{label}: tokenised data from the cache ({len(cached)} examples)")
        return cached
    token_cache.save(key, ((n, encode(fmt, ex["messages"], max_length, loss_on)) for n, ex in iter_examples(ref)))
    written = token_cache.load(key)
    if written is None:
        raise FtpError(f"{label}: the tokenisation cache entry {key} could not be read back")
    return written


def encode_file(fmt: ChatFormat, ref: DatasetRef, tokenizer_dir: Path, max_length: int, ctx: StepContext, label: str,
                loss_on: str, invalid: str) -> Sequence[Encoded]:
    """Tokenise with masks, and refuse (or, if the file says so, drop) examples that cannot train well.

    The rows are a view of the memory-mapped cache; each becomes an ``Encoded`` when a batch takes it."""
    import numpy as np

    path = ref.path
    entries = tokenise(fmt, ref, tokenizer_dir, max_length, loss_on, ctx, label)
    keep = entries.trainable()
    lines = entries.lines()
    bad = [(int(lines[i]), f"longer than {max_length} tokens" if entries[int(i)].truncated else "no token to train on")
           for i in np.flatnonzero(~keep)]
    rows = entries.select(np.flatnonzero(keep))
    if bad:
        shown = "; ".join(f"line {n}: {why}" for n, why in bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        if invalid == "error":
            raise UserError(f"{path}: {len(bad)} example(s) would train badly ({shown}); raise model.max_seq_length, "
                            "fix the data, or set train.invalid_examples: drop")
        ctx.reporter.event("warning", message=f"{label}: dropped {len(bad)} example(s) ({shown})")
    if not rows:
        raise UserError(f"{path}: no example has an answer token to train on within model.max_seq_length={max_length}")
    return rows


def draws_randomly(model: Any) -> bool:
    """Whether a forward pass in training mode draws random numbers: dropout modules with p > 0, or the
    attention's dropout, which transformers passes as a number, not a module."""
    import torch

    if float(getattr(getattr(model, "config", None), "attention_dropout", 0.0) or 0.0) > 0:
        return True
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def prepare_model(base_dir: Path, method: str, lora: LoraSettings, where: Placement, checkpointing: bool) -> Any:
    model = _load_4bit(base_dir, where) if method == "qlora" else load_model(base_dir, where)
    if checkpointing:
        # the recompute repeats the forward's random draws only if something draws: saving and restoring the
        # generator's state per layer is wasted otherwise, and a CUDA graph capture may not allow it (graphs.py)
        draws = (method != "full" and lora.dropout > 0) or draws_randomly(model)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False,
                                                                           "preserve_rng_state": draws})
        model.config.use_cache = False
    if method == "full":
        model.train()
        return model
    from peft import LoraConfig, get_peft_model

    if checkpointing:
        model.enable_input_require_grads()
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
                        use_dora=lora.dora, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    peft_model.train()
    return peft_model


def make_optimiser(name: str, params: list[Any], lr: float, weight_decay: float, fused: bool = False) -> Any:
    if name == "paged_adamw_8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise UserError("train.optimizer: paged_adamw_8bit needs bitsandbytes: pip install 'ftp[local]'") from None
        return bnb.optim.PagedAdamW8bit(params, lr=lr, weight_decay=weight_decay)
    import torch

    # fused: one kernel for every parameter instead of several per tensor (hundreds of LoRA matrices)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


FLATTEN = True  # adapters in one buffer (flat.py); a switch for benchmarks/train_gpu.py's comparison
def _load_4bit(base_dir: Path, where: Placement) -> Any:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise UserError("train.method: qlora needs bitsandbytes: pip install 'ftp[local]'") from None
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    compute = torch.bfloat16 if where.dtype_name == "bfloat16" else torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
    return AutoModelForCausalLM.from_pretrained(str(base_dir), quantization_config=quant, dtype=compute,
                                                device_map={"": where.device}, local_files_only=True)


def save_model(model: Any, fmt: ChatFormat, out: Path, meta: dict[str, Any],
               weights: dict[str, Any] | None = None, tokenizer_files: Sequence[str] = ()) -> list[str]:
    """Write to a sibling folder, then swap it in: a crash never leaves half an adapter. ``weights``:
    the trainable weights gathered from FSDP shards, written instead of what this rank holds.

    ``tokenizer_files``: the tokenizer's files this run wrote into ``out`` before, copied from there
    rather than serialised again (Gemma's 262k-token tokenizer takes about half a second, and a run saves
    at every better validation). Returns the tokenizer's files, for the next save."""
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), **({"state_dict": weights} if weights is not None else {}))
    if tokenizer_files and all((out / name).is_file() for name in tokenizer_files):
        for name in tokenizer_files:
            shutil.copyfile(out / name, tmp / name)
        names = list(tokenizer_files)
    else:
        fmt.tokenizer.chat_template = fmt.template
        written = fmt.tokenizer.save_pretrained(str(tmp))
        names = sorted({Path(f).name for f in written if Path(f).is_file() and Path(f).parent == tmp})
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return names


def place(request: TrainRequest) -> tuple[Dist, Placement, Any]:
    """Seed before anything draws (the adapters' initial values do), then the device this rank trains
    on, joined to the other ranks; and the loss scaler, made for the kind of device."""
    import torch

    settings = request.backend_settings
    random.seed(request.settings.seed)
    torch.manual_seed(request.settings.seed)
    dist = Dist.from_env(str(settings.get("strategy", "ddp")))
    where = placement(settings.get("devices", "auto"), settings.get("dtype", "auto"), settings.get("weights", "compute"))
    scaler = grad_scaler(where.device, where.dtype_name)
    if dist.world > 1 and where.device == "cuda":
        torch.cuda.set_device(dist.local_rank)
        where = Placement(f"cuda:{dist.local_rank}", where.dtype_name, where.weights)
    dist.init(where.device)
    return dist, where, scaler


def encode_data(request: TrainRequest, fmt: ChatFormat, base_dir: Path, ctx: StepContext) -> Data:
    """The training and validation examples as the model sees them, and the first one shown with its
    mask, so a wrong template or loss mask is seen before any compute is spent."""
    max_len, loss_on, invalid = request.model.max_seq_length, request.settings.loss_on, request.settings.invalid_examples
    train_rows = encode_file(fmt, request.train, base_dir, max_len, ctx, "train", loss_on, invalid)
    val_rows = (encode_file(fmt, request.validation, base_dir, max_len, ctx, "validation", loss_on, invalid)
                if request.validation else [])
    ctx.reporter.event("example", message=f"example 1 as trained (trained tokens in ⟦ ⟧): "
                                          f"{show_mask(fmt, train_rows[0])!r}")
    return Data(train_rows, val_rows)


def build(request: TrainRequest, base_dir: Path, where: Placement, dist: Dist) -> Parts:
    """The model, the loss module the ranks synchronise through, and the optimiser over what trains."""
    from .loss import AnswerLoss

    settings = request.settings
    core = prepare_model(base_dir, settings.method, settings.lora, where, settings.gradient_checkpointing)
    model = dist.wrap(AnswerLoss(core, settings.label_smoothing, settings.neftune_alpha or 0.0), where.device)
    params = [p for p in core.parameters() if p.requires_grad]
    trainable = flatten(params) if FLATTEN and dist.world == 1 and settings.method != "full" else Trainable(params)
    optimiser = make_optimiser(settings.resolved_optimizer(), trainable.params, settings.resolved_learning_rate(),
                               settings.weight_decay, fused=where.device.startswith("cuda") and not dist.sharded)
    return Parts(core, model, trainable, optimiser)


def describe(request: TrainRequest, where: Placement, data: Data, plan: Schedule, compiled: bool) -> str:
    settings = request.settings
    budget = settings.resolved_pack_tokens()
    return (f"{request.method} on {request.base_model} ({where.device}, {where.dtype_name}): {len(data.train)} "
            f"examples, {plan.total} steps of {f'{budget} tokens' if budget else settings.batch_size}"
            f"x{settings.gradient_accumulation_steps}{' packed' if settings.packing else ''}, "
            f"lr {settings.resolved_learning_rate()}, {'compiled layers, ' if compiled else ''}"
            f"validation every {plan.eval_every} steps")


def train(request: TrainRequest, ctx: StepContext) -> tuple[TrainResult, Trained]:
    """Train in this process (or as one rank of several under torchrun). The pieces run in this order
    because the random draws and the collectives do, and a resumed run must repeat them."""
    phases = Phases()
    with phases("setup"):
        dist, where, scaler = place(request)
        base_dir = models.resolve(request.base_model)
    with phases("tokenizer"):
        fmt = chat_format(load_tokenizer(base_dir), request.model.chat_template)
    with phases("data"):
        data = encode_data(request, fmt, base_dir, ctx)
    with phases("model"):
        parts = build(request, base_dir, where, dist)
        plan = Schedule.of(request.settings, data.train)
        compiled = wants_compile(request.backend_settings.get("compile", "auto"), where.device, plan.total,
                                 graphs.expected(request, where, dist.world, scaler.is_enabled(), parts.core))
        if compiled:
            compile_layers(parts.core, str(request.backend_settings.get("compile_backend", "inductor")))
    meta = {"base_model": request.base_model, "method": request.method, "chat_template": fmt.name,
            "max_seq_length": request.model.max_seq_length}
    loop = Loop(request, ctx, fmt, where, dist, scaler, parts, data, plan, meta, phases)
    with phases("resume"):
        loop.resume()
    ctx.reporter.event("train_plan", message=describe(request, where, data, plan, compiled))
    stopped = run(loop, compiled)
    save_last(loop)  # its saving is timed as "save"
    with phases("finish"):
        if compiled:
            uncompile_layers(parts.core)
        core, st = parts.core, loop.st
        if st.best_step is not None and st.best_step != st.step and dist.world == 1:  # workers' models are not used
            core = _reload_best(core, request, where)
    return result(loop, stopped), Trained(request.output_dir, core, fmt, where)


def run(loop: Loop, compiled: bool = False) -> bool:
    """Step to the last step or to an early stop (then True), with the precision, attention and CUDA
    graph settings that hold only while training runs."""
    loop.begin()
    precision = ExitStack()
    precision.enter_context(adapters_follow_autocast(loop.parts.core, loop.where.dtype_name))
    mask_free = bool(loop.settings.packing and loop.request.backend_settings.get("attention", "auto") == "auto"
                     and precision.enter_context(packed(causal_lm(loop.parts.core))))
    if mask_free:
        how = ("variable-length FlashAttention" if loop.where.device.startswith("cuda")
               else "attention over each example in turn")
        loop.ctx.reporter.event("attention", message=f"packed rows use {how} (no mask)")
    swap_forwards(loop, precision)
    try:
        loop.graphs = graphs.begin(loop, mask_free, compiled)
        if loop.graphs is not None:
            precision.callback(loop.graphs.close)
            precision.callback(setattr, loop, "graphs", None)
        while loop.st.step < loop.plan.total:
            with loop.phases("steps"):
                loop.step()
            if validate(loop):
                return True
            loop.save_checkpoint()
    finally:
        precision.close()
        loop.task.close()
    return False


def validate(loop: Loop) -> bool:
    """Every ``eval_steps`` and at the last step: keep the model when validation improved, else count
    towards early stopping. True when training should stop."""
    st, parts, stopping, total = loop.st, loop.parts, loop.settings.early_stopping, loop.plan.total
    if not loop.data.validation or not (st.step % loop.plan.eval_every == 0 or st.step == total):
        return False
    from .loss import evaluate_loss

    with loop.phases("validation"), loop.amp():  # sharded weights are gathered by the root module's forward: score through it
        val = evaluate_loss(parts.model if loop.dist.sharded else parts.core, loop.data.validation,
                            loop.fmt.tokenizer.pad_token_id, loop.where.device, loop.settings.batch_size,
                            loop.settings.resolved_pack_tokens(), pack=loop.settings.packing)
    loop.log({"step": st.step, "eval_loss": val})
    st.val_curve.append([st.step, val])
    if val < st.best - (stopping.min_delta if stopping is not None else 0.0):
        st.best, st.best_step, st.bad_evals = val, st.step, 0
        save(loop, {"step": st.step, "eval_loss": val})
        return False
    st.bad_evals += 1
    if stopping is not None and st.bad_evals >= stopping.patience and st.step < total:
        loop.ctx.reporter.event("early_stop", message=f"early stop at step {st.step}: validation loss has not "
                                                      f"improved on {st.best:.4f} (step {st.best_step})")
        return True
    return False


def save(loop: Loop, extra: dict[str, Any]) -> None:
    """The model as it is now: gathered from the shards by every rank, written by the first."""
    with loop.phases("save"):
        weights = loop.dist.full_trainable(loop.parts.core)
        if loop.dist.main:
            loop.tokenizer_files = save_model(loop.parts.core, loop.fmt, loop.request.output_dir,
                                              {**loop.meta, **extra}, weights, loop.tokenizer_files)
        loop.dist.barrier()


def save_last(loop: Loop) -> None:
    """Without a best model chosen by validation, the last one is the model. Either way the checkpoint
    goes: the model is saved, and the optimiser state is of no more use."""
    if loop.st.best_step is None:
        save(loop, {"step": loop.st.step})
    else:
        loop.dist.barrier()
    if loop.dist.main:
        shutil.rmtree(loop.ckpt_dir, ignore_errors=True)


def result(loop: Loop, stopped: bool) -> TrainResult:
    request, st = loop.request, loop.st
    wall = time.perf_counter() - loop.start
    curve = Curve(train=[(int(a), b) for a, b in st.train_curve], val=[(int(a), b) for a, b in st.val_curve])
    metrics = {"train_loss": curve.train[-1][1], "train_tokens_per_s": st.tokens_seen / max(wall, 1e-9)}
    if curve.val:
        metrics["eval_loss"] = st.best
    kind = "full" if request.method == "full" else "adapter"
    return TrainResult(model=ModelRef(kind=kind, base=request.base_model, backend=request.backend,
                                      path=request.output_dir),
                       metrics=metrics, steps=st.step, epochs=round(st.step / loop.plan.steps_per_epoch, 3),
                       train_tokens=st.trained_tokens, wall_seconds=round(wall, 2),
                       peak_memory_mb=round(peak_memory_mb(loop.where.device), 1), best_step=st.best_step,
                       stopped_early=stopped, overfitting=curve.verdict(), phases=loop.phases.rounded())


def _reload_best(model: Any, request: TrainRequest, where: Placement) -> Any:
    """Training went on past the best checkpoint: put the saved best weights back in memory."""
    if request.method == "full":
        return load_model(request.output_dir, where)
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = request.output_dir / "adapter_model.safetensors"
    if not weights.exists():
        raise FtpError(f"{weights}: the best adapter is missing")
    set_peft_model_state_dict(model, load_file(str(weights), device=where.device))
    return model
