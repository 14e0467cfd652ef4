"""The local training loop: PEFT LoRA (or QLoRA, or full fine-tuning) with answer-only loss,
periodic validation, early stopping that keeps the best adapter, and progress with tokens/s.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.data.sources import iter_examples
from ftp.eval.overfitting import verdict
from ftp.errors import FtpError, UserError
from ftp.types import DatasetRef, ModelRef, StepContext, TrainRequest, TrainResult

from . import models
from . import checkpoint, token_cache
from .precision import adapters_follow_autocast, autocast, grad_scaler
from .distributed import Dist
from .chat import ChatFormat, Encoded, chat_format, encode, show_mask
from .attention import packed
from .flat import Trainable, flatten
from .modeling import (Placement, collate, collate_packed, compile_layers, load_model, load_tokenizer,
                       causal_lm, peak_memory_mb, placement, uncompile_layers)
from .schedule import epoch_order, examples_to_take, lr_at, micro_batches_per_epoch

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


def prepare_model(base_dir: Path, method: str, lora: dict[str, Any], where: Placement, checkpointing: bool) -> Any:
    model = _load_4bit(base_dir, where) if method == "qlora" else load_model(base_dir, where)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if method == "full":
        model.train()
        return model
    from peft import LoraConfig, get_peft_model

    if checkpointing:
        model.enable_input_require_grads()
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
                        target_modules=lora["target_modules"], use_dora=bool(lora.get("dora")), task_type="CAUSAL_LM")
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
COMPILE_MIN_STEPS = 100  # compiling costs about a minute; on an H200 it saves ~0.1-0.3 s per step


def wants_compile(setting: str | bool, device: str, steps: int) -> bool:
    """``auto`` compiles on CUDA for runs long enough to repay the compile time; never on a CPU by
    default, where compiling costs minutes."""
    if setting == "auto":
        import importlib.util

        return (device.startswith("cuda") and steps >= COMPILE_MIN_STEPS
                and importlib.util.find_spec("triton") is not None)
    return bool(setting)


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


def evaluate_loss(model: Any, rows: Sequence[Encoded], pad_id: int, device: str, batch_size: int) -> float:
    import torch

    from .loss import answer_loss, loss_model

    scorer = loss_model(model)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            loss, n = answer_loss(scorer, collate(list(rows[i:i + batch_size]), pad_id, device))
            total += float(loss)
            count += n
    if was_training:
        model.train()
    return total / max(1, count)


def save_model(model: Any, fmt: ChatFormat, out: Path, meta: dict[str, Any],
               weights: dict[str, Any] | None = None) -> None:
    """Write to a sibling folder, then swap it in: a crash never leaves half an adapter. ``weights``:
    the trainable weights gathered from FSDP shards, written instead of what this rank holds."""
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), **({"state_dict": weights} if weights is not None else {}))
    fmt.tokenizer.chat_template = fmt.template
    fmt.tokenizer.save_pretrained(str(tmp))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def train(request: TrainRequest, ctx: StepContext) -> tuple[TrainResult, Trained]:
    import torch

    hp = request.hyperparameters
    settings = request.backend_settings
    seed = int(hp["seed"])
    random.seed(seed)
    torch.manual_seed(seed)
    dist = Dist.from_env(str(settings.get("strategy", "ddp")))
    where = placement(settings.get("devices", "auto"), settings.get("dtype", "auto"), settings.get("weights", "compute"))
    scaler = grad_scaler(where.device, where.dtype_name)
    if dist.world > 1 and where.device == "cuda":
        torch.cuda.set_device(dist.local_rank)
        where = Placement(f"cuda:{dist.local_rank}", where.dtype_name, where.weights)
    dist.init(where.device)
    base_dir = models.resolve(request.base_model)
    fmt = chat_format(load_tokenizer(base_dir), hp["chat_template"])
    max_len = int(hp["max_seq_length"])
    loss_on, invalid = hp.get("loss_on", "assistant"), hp.get("invalid_examples", "error")
    train_rows = encode_file(fmt, request.train, base_dir, max_len, ctx, "train", loss_on, invalid)
    val_rows = (encode_file(fmt, request.validation, base_dir, max_len, ctx, "validation", loss_on, invalid)
                if request.validation else [])
    ctx.reporter.event("example", message=f"example 1 as trained (trained tokens in ⟦ ⟧): "
                                          f"{show_mask(fmt, train_rows[0])!r}")
    core = prepare_model(base_dir, request.method, hp["lora"], where, bool(hp.get("gradient_checkpointing")))
    from .loss import AnswerLoss, answer_loss

    model = dist.wrap(AnswerLoss(core, float(hp.get("label_smoothing") or 0.0), float(hp.get("neftune_alpha") or 0.0)),
                      where.device)  # DDP over all ranks; ``core`` is saved and evaluated
    params = [p for p in core.parameters() if p.requires_grad]
    trainable = (flatten(params) if FLATTEN and dist.world == 1 and request.method != "full" else Trainable(params))
    optimiser = make_optimiser(hp.get("optimizer", "adamw"), trainable.params, hp["learning_rate"], hp["weight_decay"],
                               fused=where.device.startswith("cuda") and not dist.sharded)

    batch, accum = int(hp["batch_size"]), int(hp["gradient_accumulation_steps"])
    packing = bool(hp.get("packing", True))
    budget = hp.get("pack_tokens")
    steps_per_epoch = math.ceil(micro_batches_per_epoch(train_rows, seed, batch, budget) / accum)
    total = int(hp["max_steps"] or math.ceil(steps_per_epoch * float(hp["epochs"])))
    warmup = int(total * float(hp["warmup_ratio"]))
    compiled = wants_compile(settings.get("compile", "auto"), where.device, total)
    pack_multiple = int(settings.get("pack_multiple", 0))
    if compiled:
        compile_layers(core, str(settings.get("compile_backend", "inductor")))
    eval_every = int(hp["eval_steps"] or max(1, steps_per_epoch // 2))
    save_every = int(hp.get("checkpoint_steps") or eval_every)
    stopping = hp.get("early_stopping")
    meta = {"base_model": request.base_model, "method": request.method, "chat_template": fmt.name,
            "max_seq_length": max_len}
    ckpt_dir = request.output_dir.parent / "checkpoint"
    fp = checkpoint.fingerprint(request)
    st = checkpoint.load(ckpt_dir, fp, core, optimiser, dist.sharded) or checkpoint.LoopState(fingerprint=fp)
    if st.loss_scale:
        scaler.load_state_dict(st.loss_scale)
    if st.step:
        for row in st.rows:
            ctx.log_metrics(row)
        ctx.reporter.event("resumed", message=f"resumed from the checkpoint at step {st.step} of {total}")
    ctx.reporter.event("train_plan", message=(
        f"{request.method} on {request.base_model} ({where.device}, {where.dtype_name}): {len(train_rows)} examples, "
        f"{total} steps of {f'{budget} tokens' if budget else batch}x{accum}{' packed' if packing else ''}, "
        f"lr {hp['learning_rate']}, "
        f"{'compiled layers, ' if compiled else ''}"
        f"validation every {eval_every} steps"))

    def log(row: dict[str, Any]) -> None:
        st.rows.append(row)
        if dist.main:
            ctx.log_metrics(row)

    stopped, start = False, time.perf_counter() - st.elapsed
    task = ctx.reporter.progress("train", total) if dist.main else _Silent()
    amp = lambda: autocast(where.device, where.dtype_name)  # noqa: E731
    precision = ExitStack()
    precision.enter_context(adapters_follow_autocast(core, where.dtype_name))
    if packing and settings.get("attention", "auto") == "auto" and precision.enter_context(packed(causal_lm(core))):
        ctx.reporter.event("attention", message="packed rows use variable-length FlashAttention (no mask)")
    try:
        while st.step < total:
            step = st.step
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step, total, warmup, hp["learning_rate"], hp["scheduler"])
            micro = []
            for _ in range(accum):
                if st.cursor >= len(st.order):
                    st.order = epoch_order(len(train_rows), seed, st.epoch)
                    st.cursor, st.epoch = 0, st.epoch + 1
                take = examples_to_take(train_rows, st.order, st.cursor, batch, budget)
                micro.append([train_rows[i] for i in st.order[st.cursor:st.cursor + take]])
                st.cursor += take
            shares = [(dist.shard(rows), rows) for rows in micro]  # this rank's share of each micro-batch
            n_trained = int(dist.total(sum(r.trained_tokens for mine, _ in shares for r in mine))[0])
            step_loss, step_tokens = torch.zeros((), device=where.device), 0
            for mine, whole in shares:
                # An epoch's last micro-batch can hold fewer examples than there are processes. A rank with
                # none still runs forward and backward (DDP and FSDP synchronise in them), on a stand-in
                # example whose loss counts zero.
                rows, weight = (mine, dist.world / max(1, n_trained)) if mine else (whole[:1], 0.0)
                b = (collate_packed(rows, where.device, fmt.tokenizer.pad_token_id, pack_multiple) if packing
                     else collate(rows, fmt.tokenizer.pad_token_id, where.device))
                with amp():
                    loss, _ = answer_loss(model, b)
                scaler.scale(loss * weight).backward()  # DDP averages over ranks: world / n_trained makes it a sum
                if mine:
                    step_loss += loss.detach()  # no .item(): the GPU keeps working while the next batch is built
                    step_tokens += b.tokens
            trainable.gather()
            scaler.unscale_(optimiser)
            torch.nn.utils.clip_grad_norm_(trainable.params, 1.0)
            scaler.step(optimiser)  # skipped (float16 only) when a gradient overflowed; the scale then shrinks
            scaler.update()
            trainable.zero_grad(optimiser)
            loss_sum, tokens_sum = dist.total(float(step_loss), step_tokens)  # all ranks, one reduction per step
            st.step = step + 1
            st.trained_tokens += n_trained
            st.tokens_seen += int(tokens_sum)
            train_loss = loss_sum / max(1, n_trained)
            elapsed = time.perf_counter() - start
            log({"step": st.step, "epoch": round(st.epoch - 1 + st.cursor / len(train_rows), 3),
                 "train_loss": train_loss, "lr": optimiser.param_groups[0]["lr"], "tokens": st.tokens_seen,
                 "tokens_per_s": st.tokens_seen / max(elapsed, 1e-9),
                 **({"loss_scale": scaler.get_scale()} if scaler.is_enabled() else {})})
            st.train_curve.append([st.step, train_loss])
            task.update(st.step, loss=round(train_loss, 4), tok_s=round(st.tokens_seen / max(elapsed, 1e-9)))
            if val_rows and (st.step % eval_every == 0 or st.step == total):
                # sharded weights are gathered by the root module's forward: score through it
                with amp():
                    val = evaluate_loss(model if dist.sharded else core, val_rows, fmt.tokenizer.pad_token_id,
                                        where.device, batch)
                log({"step": st.step, "eval_loss": val})
                st.val_curve.append([st.step, val])
                if val < st.best - (stopping or {}).get("min_delta", 0.0):
                    st.best, st.best_step, st.bad_evals = val, st.step, 0
                    weights = dist.full_trainable(core)
                    if dist.main:
                        save_model(core, fmt, request.output_dir, {**meta, "step": st.step, "eval_loss": val},
                                   weights)
                    dist.barrier()
                else:
                    st.bad_evals += 1
                    if stopping and st.bad_evals >= stopping["patience"] and st.step < total:
                        stopped = True
                        ctx.reporter.event("early_stop", message=f"early stop at step {st.step}: validation loss "
                                                                 f"has not improved on {st.best:.4f} (step {st.best_step})")
                        break
            if st.step % save_every == 0 and st.step < total:
                st.elapsed = time.perf_counter() - start
                st.loss_scale = scaler.state_dict()
                saved = dist.checkpoint_state(core, optimiser)
                if saved is not None:
                    checkpoint.save(ckpt_dir, st, *saved)
                dist.barrier()
    finally:
        precision.close()
        task.close()
    if st.best_step is None:
        weights = dist.full_trainable(core)
        if dist.main:
            save_model(core, fmt, request.output_dir, {**meta, "step": st.step}, weights)
    dist.barrier()
    if dist.main:
        shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: the adapter is saved, the optimiser is not needed
    if compiled:
        uncompile_layers(core)
    if st.best_step is not None and st.best_step != st.step and dist.world == 1:  # workers' models are not used
        core = _reload_best(core, request, where)
    wall = time.perf_counter() - start
    curve = Curve(train=[(int(a), b) for a, b in st.train_curve], val=[(int(a), b) for a, b in st.val_curve])
    metrics = {"train_loss": curve.train[-1][1], "train_tokens_per_s": st.tokens_seen / max(wall, 1e-9)}
    if curve.val:
        metrics["eval_loss"] = st.best
    kind = "full" if request.method == "full" else "adapter"
    result = TrainResult(model=ModelRef(kind=kind, base=request.base_model, backend=request.backend,
                                        path=request.output_dir),
                         metrics=metrics, steps=st.step, epochs=round(st.step / steps_per_epoch, 3),
                         train_tokens=st.trained_tokens, wall_seconds=round(wall, 2),
                         peak_memory_mb=round(peak_memory_mb(where.device), 1), best_step=st.best_step,
                         stopped_early=stopped, overfitting=curve.verdict())
    return result, Trained(request.output_dir, core, fmt, where)


class _Silent:
    def update(self, completed: int, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


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
