"""Training throughput on one GPU: ftp's trainer against TRL's SFTTrainer, in the same process.

    python benchmarks/train_gpu.py --shape 1b --method qlora --out results.json [--configs ftp,trl-best] [--profile]

A Llama model of the given shape is built from a config with random weights (speed does not depend on
them), saved once, and trained with (Q)LoRA r=16, alpha 32, dropout 0.05 on all linear layers, bf16,
gradient checkpointing, lr 2e-4, on the same synthetic chat data (lognormal lengths, median ~350
tokens, up to 2,048; loss on the answer only) with about 2,000 real tokens per optimiser step:

- ``trl-defaults``: SFTTrainer, batch 4, no packing, its default optimiser;
- ``trl-best``: SFTTrainer, packing (best-fit decreasing, padding-free) into 1 x 2,048, Liger kernels,
  paged 8-bit AdamW (the best configuration of the reference in ../shared/reference/device-notes.md);
- ``ftp``: ftp's trainer, examples packed padding-free into one row of up to 2,048 tokens
  (``train.pack_tokens: 2048``), mask-free variable-length attention, adapters stepped as one flat
  tensor, compiled decoder layers (``backends.local.compile: auto``), its default optimiser (paged
  8-bit AdamW for QLoRA);
- ``ftp-eager``: the same without compilation; ``ftp-no-flat``: without the flat adapters;
  ``ftp-rounded``: rows rounded up to a multiple of 256 tokens;
- ``ftp-sdpa``: as ftp trained before mask-free attention and flat adapters (SDPA with a
  block-diagonal mask); ``ftp-sdpa-5-per-step``: that, with 5 examples per step as in the earlier results.

Reported per configuration: non-padding tokens per second over the steps after the first five, peak
GPU memory (``torch.cuda.max_memory_allocated``), wall time and MFU = 4 x N x tokens/s / 989e12,
N = matmul parameters (decoder linears + lm_head): frozen weights get no weight gradient, so a token
costs 2N FLOPs forward and 2N backward (device-notes.md's formula; recomputation is not counted).
``--profile`` adds a torch.profiler summary of three ftp steps: GPU busy share, kernels per step and
the kernels that take the time.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096),  # a CPU smoke test of this script
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
}
PEAK_BF16 = 989e12


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


DEVICE = _device()


def peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if DEVICE == "cuda" else float("nan")


def reset_peak() -> None:
    import gc

    import torch

    gc.collect()

    if DEVICE == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()


def build_model(shape: str, folder: Path) -> Path:
    """Random weights in bf16, saved with a small byte-level tokenizer (ids stay below the vocab)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "config.json").exists():
        return folder
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    words = [f"w{i}" for i in range(3000)]
    tok.train_from_iterator([" ".join(random.Random(i).sample(words, 50)) for i in range(2000)],
                            trainers.BpeTrainer(vocab_size=4000, special_tokens=["<pad>", "<s>", "</s>", "<|im_start|>",
                                                                                  "<|im_end|>"],
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(folder)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(folder)
    del model
    reset_peak()
    return folder


def make_data(path: Path, n: int, tokenizer: Any) -> None:
    """Lognormal lengths, median ~350 tokens, clipped to 32..2048; the answer is ~20% of each example."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)]
    per_word = len(tokenizer(" ".join(words[:200]), add_special_tokens=False)["input_ids"]) / 200
    with path.open("w") as fh:
        for _ in range(n):
            tokens = min(2048, max(32, int(rng.lognormvariate(math.log(350), 0.6))))
            total = max(8, int(tokens / per_word) - 12)
            answer = max(2, total // 5)
            user, assistant = " ".join(rng.choices(words, k=total - answer)), " ".join(rng.choices(words, k=answer))
            fh.write(json.dumps({"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": assistant}]}) + "\n")


def matmul_params(shape: str) -> int:
    s = SHAPES[shape]
    h, i, L, heads, kv, v = (s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"],
                             s["num_attention_heads"], s["num_key_value_heads"], s["vocab_size"])
    head = h // heads
    return L * (h * h * 2 + 2 * h * kv * head + 3 * h * i) + h * v


class Ctx:
    """A minimal StepContext for calling ftp's trainer directly."""

    def __init__(self, folder: Path) -> None:
        from ftp.run.progress import QuietReporter

        self.run_id, self.run_dir, self.reporter = "bench", folder, QuietReporter()
        self.backend_settings: dict[str, Any] = {"devices": DEVICE}
        self.rows: list[dict[str, Any]] = []
        self.on_step: Any = None

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self.on_step and "tokens" in row:
            self.on_step()

    def setting(self, path: str) -> Any:
        return None


def run_ftp(model_dir: Path, data: Path, work: Path, steps: int, method: str, compile_layers: bool,
            profile: bool = False, pack_multiple: int = 0, attention: str = "auto", flat: bool = True,
            pack_tokens: int | None = 2048) -> dict[str, Any]:
    import torch

    from ftp.backends.local import training
    from ftp.backends.local.memory import plan_memory
    from ftp.data.files import dataset_ref
    from ftp.config.settings import PipelineSettings
    from ftp.types import TrainRequest

    training.FLATTEN = flat
    per_step = {"pack_tokens": pack_tokens} if pack_tokens else {"batch_size": 5}
    settings = PipelineSettings(name="bench", data={"train": str(data)}, model={"base": str(model_dir),
                                "max_seq_length": 2048, "chat_template": "chatml"},
                                train={"method": method, "max_steps": steps, **per_step,
                                       "gradient_accumulation_steps": 1, "packing": True,
                                       "early_stopping": None, "warmup_ratio": 0.0,
                                       "invalid_examples": "drop", "gradient_checkpointing": True})
    backend = {"devices": DEVICE, "compile": compile_layers, "pack_multiple": pack_multiple, "attention": attention}
    request = TrainRequest(backend="local", base_model=str(model_dir), settings=settings.train, model=settings.model,
                           train=dataset_ref(data, "train"),
                           validation=None, output_dir=work / f"model-ftp-{compile_layers}", backend_settings=backend)
    plan = plan_memory(request)
    reset_peak()
    ctx = Ctx(work)
    ctx.backend_settings = backend
    prof, summary = (start_profile(ctx, steps) if profile else (None, {}))
    steady: list[float] = []
    phases = {"forward": 0.0, "backward_and_step": 0.0, "after_forward": 0.0}
    if prof is None and DEVICE == "cuda":  # memory held between steps: weights, adapters, optimiser state
        ctx.on_step = lambda: steady.append(torch.cuda.memory_allocated() / 2**30)
        from ftp.backends.local import loss as loss_module  # the loop imports answer_loss from it at each step

        loss_module.answer_loss = phase_peaks(loss_module.answer_loss, phases)  # type: ignore[assignment]
    start = time.perf_counter()
    result, trained = training.train(request, ctx)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    if prof is not None:
        summary.update(profile_summary(prof, summary))
    rows = [r for r in ctx.rows if "tokens" in r]
    first, end = min(5, len(rows) - 2), len(rows) - (6 if prof is not None else 1)  # profiled steps are not timed
    warm, last = rows[first], rows[end]  # skip the first steps (compilation, kernel selection, allocator growth)
    elapsed = (last["tokens"] / last["tokens_per_s"]) - (warm["tokens"] / warm["tokens_per_s"])
    tps = (last["tokens"] - warm["tokens"]) / max(elapsed, 1e-9)
    shape = f"packed to {pack_tokens} tokens/step" if pack_tokens else "5 packed/step"
    out = {"trainer": f"ftp {method} ({shape}, {settings.train.resolved_optimizer()}, "
                      f"{'compiled layers' if compile_layers else 'eager'}, attention {attention}"
                      f"{', flat adapters' if flat else ''}"
                      f"{f', rows rounded up to {pack_multiple}' if pack_multiple else ''})",
           "tokens_per_s": round(tps), "tokens_per_step": round((last["tokens"] - warm["tokens"]) / (end - first)),
           "wall_s": round(wall, 1), "peak_gib": round(max(peak_gib(), phases["forward"], phases["backward_and_step"]), 2), "predicted_gib": round(plan.total_gib, 2),
           "first_loss": round(rows[0]["train_loss"], 4), "final_loss": round(result.metrics["train_loss"], 4)}
    if steady:
        out["between_steps_gib"] = round(steady[-1], 2)
        out["peak_gib_by_phase"] = {k: round(v, 2) for k, v in phases.items()}
    if summary:
        out["profile"] = summary
    del trained
    reset_peak()
    return out


def start_profile(ctx: Ctx, steps: int) -> tuple[Any, dict[str, Any]]:
    """Profile three of the last steps (after compilation and warm-up), timing them on the host as well."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                   schedule=schedule(wait=steps - 5, warmup=1, active=3, repeat=1))
    marks: dict[str, Any] = {"times": [], "first": steps - 5}

    def step() -> None:
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        marks["times"].append(time.perf_counter())
        prof.step()

    prof.start()
    ctx.on_step = step
    return prof, marks


def profile_summary(prof: Any, marks: dict[str, Any]) -> dict[str, Any]:
    from torch.autograd import DeviceType

    prof.stop()
    times, first = marks.pop("times"), marks.pop("first")
    wall_us = (times[first + 3] - times[first]) * 1e6  # the three active steps, after the warm-up step
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.key.startswith("ProfilerStep")]
    busy = sum(e.self_device_time_total for e in kernels)
    top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:10]
    host = sorted((e for e in events if e.device_type == DeviceType.CPU and not e.key.startswith("ProfilerStep")),
                  key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return {"gpu_busy_share": round(busy / wall_us, 3), "step_ms": round(wall_us / 3e3, 1),
            "gpu_kernel_ms_per_step": round(busy / 3e3, 1), "kernels_per_step": round(sum(e.count for e in kernels) / 3),
            "top_kernels": [{"name": e.key[:90], "ms_per_step": round(e.self_device_time_total / 3e3, 2),
                             "share_of_gpu_time": round(e.self_device_time_total / max(busy, 1), 3)} for e in top],
            "top_host_ops": [{"name": e.key[:90], "self_cpu_ms_per_step": round(e.self_cpu_time_total / 3e3, 2),
                              "calls_per_step": round(e.count / 3)} for e in host],
            "compile": compile_counters()}


def compile_counters() -> dict[str, Any]:
    """Graphs, graph breaks and recompilations: whether the compiled layers really run compiled."""
    from torch._dynamo.utils import counters

    return {k: {n: int(v) for n, v in list(counts.items())[:8]} for k, counts in counters.items()
            if k in ("stats", "graph_break", "recompiles", "unimplemented")}


def load_quantised(model_dir: Path, method: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if method == "qlora":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quant,
                                                    device_map={"": 0})
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(DEVICE)


def pretokenised(model_dir: Path, data: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The same chatml rendering ftp uses, with a completion mask so that TRL trains the answer only."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    for line in data.read_text().splitlines():
        ex = json.loads(line)["messages"]
        prompt = tok(f"<|im_start|>user\n{ex[0]['content']}<|im_end|>\n<|im_start|>assistant\n",
                     add_special_tokens=False)["input_ids"]
        answer = tok(f"{ex[1]['content']}<|im_end|>\n", add_special_tokens=False)["input_ids"]
        if len(prompt) + len(answer) <= 2048:
            rows.append({"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)})
    return tok, rows


def run_trl(model_dir: Path, data: Path, work: Path, steps: int, method: str, best: bool) -> dict[str, Any]:
    """TRL 1.16 SFTTrainer at its defaults, or at its best (packing, Liger kernels, paged 8-bit AdamW)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    tok, rows = pretokenised(model_dir, data)
    model = load_quantised(model_dir, method)
    gpu = DEVICE == "cuda"
    extra: dict[str, Any] = ({"packing": True, "use_liger_kernel": gpu, "optim": "paged_adamw_8bit",
                              "per_device_train_batch_size": 1} if best else {"per_device_train_batch_size": 4})
    config = SFTConfig(output_dir=str(work / "trl"), max_steps=steps, gradient_accumulation_steps=1,
                       learning_rate=2e-4, bf16=gpu, use_cpu=not gpu, gradient_checkpointing=True, max_length=2048,
                       completion_only_loss=True, logging_steps=1000, save_strategy="no", report_to=[],
                       dataloader_num_workers=0, **extra)
    seen: dict[str, Any] = {"tokens": 0, "t5": None, "tok5": 0, "steps": 0}

    class Count(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if DEVICE == "cuda":
                torch.cuda.synchronize()
            seen["steps"] = state.global_step
            if state.global_step == 5:
                seen["t5"], seen["tok5"] = time.perf_counter(), seen["tokens"]

    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    reset_peak()
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         peft_config=lora, callbacks=[Count()])
    collate = trainer.data_collator

    def counting(batch_rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = collate(batch_rows)
        mask = batch.get("attention_mask")
        seen["tokens"] += int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting
    start = time.perf_counter()
    trainer.train()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    tps = (seen["tokens"] - seen["tok5"]) / (end - seen["t5"])
    name = ("TRL SFTTrainer best (packing bfd 1x2048, Liger, paged_adamw_8bit)" if best
            else "TRL SFTTrainer defaults (batch 4, no packing)")
    out = {"trainer": f"{name} {method}", "tokens_per_s": round(tps), "tokens_per_step": round((seen["tokens"] - seen["tok5"]) / (seen["steps"] - 5)),
           "wall_s": round(end - start, 1), "peak_gib": round(peak_gib(), 2)}
    del trainer, model
    reset_peak()
    return out


def phase_peaks(answer_loss: Any, phases: dict[str, float]) -> Any:
    """Wrap the trainer's loss call to split the peak into forward and backward + optimiser step (the
    allocator's peak counter is reset around each forward; the overall peak is the largest of them)."""
    import torch

    gib = lambda: torch.cuda.max_memory_allocated() / 2**30  # noqa: E731

    def measured(model: Any, batch: Any) -> Any:
        phases["backward_and_step"] = max(phases["backward_and_step"], gib())
        torch.cuda.reset_peak_memory_stats()
        out = answer_loss(model, batch)
        phases["forward"] = max(phases["forward"], gib())
        phases["after_forward"] = max(phases["after_forward"], torch.cuda.memory_allocated() / 2**30)
        torch.cuda.reset_peak_memory_stats()
        return out

    return measured


def ftp_config(**options: Any) -> Any:
    return lambda a, m, d: run_ftp(m, d, a.work, a.steps, a.method, **{"profile": a.profile, **options})


CONFIGS = {
    "trl-defaults": lambda a, m, d: run_trl(m, d, a.work, a.steps, a.method, best=False),
    "trl-best": lambda a, m, d: run_trl(m, d, a.work, a.steps, a.method, best=True),
    "ftp": ftp_config(compile_layers=True),
    "ftp-eager": ftp_config(compile_layers=False, profile=False),
    # what ftp did before mask-free attention and flat adapters (the earlier results' "ftp")
    "ftp-sdpa": ftp_config(compile_layers=True, attention="sdpa", flat=False, profile=False),
    "ftp-sdpa-5-per-step": ftp_config(compile_layers=True, attention="sdpa", flat=False, profile=False,
                                      pack_tokens=None),
    "ftp-no-flat": ftp_config(compile_layers=True, flat=False, profile=False),
    "ftp-rounded": ftp_config(compile_layers=True, pack_multiple=256, profile=False),
}


def in_own_process(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """A process per configuration: nothing one leaves in GPU memory or in compile caches counts for the next."""
    import subprocess

    out = args.work / f"result-{name}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, __file__, "--shape", args.shape, "--steps", str(args.steps), "--work", str(args.work),
               "--method", args.method, "--single", name, "--out", str(out)] + (["--profile"] if args.profile else [])
    proc = subprocess.run(command, capture_output=True, text=True)
    if out.exists():
        return json.loads(out.read_text())
    return {"trainer": name, "error": proc.stderr[-800:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ftp-bench"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--method", choices=["lora", "qlora"], default="qlora")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--profile", action="store_true", help="profile three steps of the ftp configuration")
    parser.add_argument("--single", help=argparse.SUPPRESS)  # one configuration, in a process of its own
    args = parser.parse_args()
    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(args.shape, args.work / args.shape)
    from transformers import AutoTokenizer

    data = args.work / "data.jsonl"
    if not args.single:
        make_data(data, 4000, AutoTokenizer.from_pretrained(model_dir))
    if args.single:
        try:
            r = CONFIGS[args.single](args, model_dir, data)
        except Exception as exc:  # record and go on: one failure must not lose the other numbers
            r = {"trainer": args.single, "error": f"{type(exc).__name__}: {exc}"[:800]}
        args.out.write_text(json.dumps(r))
        return
    results = []
    for name in args.configs.split(","):
        r = in_own_process(name, args)
        if "tokens_per_s" in r:
            r["mfu"] = round(4 * matmul_params(args.shape) * r["tokens_per_s"] / PEAK_BF16, 4)
        print(json.dumps(r), flush=True)
        results.append(r)
        payload = {"shape": args.shape, "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
                   "steps": args.steps, "method": args.method, "lora": "r=16 alpha=32 dropout=0.05 all-linear",
                   "dtype": "bf16", "gradient_checkpointing": True, "torch": torch.__version__, "results": results}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2))  # after every configuration: a time-out keeps the rest


if __name__ == "__main__":
    main()
