"""Training throughput on one GPU: ftp's trainer against the plain Hugging Face Trainer + PEFT.

    python benchmarks/train_gpu.py --shape 1b --steps 30 --out results.json

A Llama model of the given shape is built from a config with random weights (speed does not depend on
them), saved once, and trained with LoRA r=16 on all linear layers, bf16, on the same synthetic chat
data (lognormal lengths, median ~350 tokens, up to 2,048) with the same examples per optimiser step.
Reported per configuration: non-padding tokens per second, peak GPU memory, ftp's predicted peak, and
model FLOPs utilisation MFU = 6 x N_trainable_path x tokens/s / 989e12 is not used: with frozen
weights the backward pass skips weight gradients, so MFU = 4 x N x tokens/s / 989e12 (N = matmul
parameters: decoder linears + lm_head), the formula of device-notes.md.
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
    import torch

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
        from ftp.progress import QuietReporter

        self.run_id, self.run_dir, self.reporter = "bench", folder, QuietReporter()
        self.backend_settings = {"devices": DEVICE}
        self.rows: list[dict[str, Any]] = []

    def log_metrics(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def setting(self, path: str) -> Any:
        return None


def run_ftp(model_dir: Path, data: Path, work: Path, steps: int, batch: int, accum: int, packing: bool,
            method: str = "lora") -> dict[str, Any]:

    from ftp.backends.local.memory import plan_memory
    from ftp.backends.local.training import train
    from ftp.data_files import dataset_ref
    from ftp.settings import PipelineSettings
    from ftp.types import TrainRequest

    settings = PipelineSettings(name="bench", data={"train": str(data)}, model={"base": str(model_dir),
                                "max_seq_length": 2048, "chat_template": "chatml"},
                                train={"method": method, "max_steps": steps, "batch_size": batch,
                                       "gradient_accumulation_steps": accum, "packing": packing,
                                       "early_stopping": None, "warmup_ratio": 0.0,
                                       "invalid_examples": "drop", "gradient_checkpointing": True})
    request = TrainRequest(backend="local", base_model=str(model_dir), method=method,
                           hyperparameters=settings.hyperparameters(), train=dataset_ref(data, "train"),
                           validation=None, output_dir=work / f"model-{packing}", backend_settings={"devices": DEVICE})
    plan = plan_memory(request)
    reset_peak()
    ctx = Ctx(work)
    start = time.perf_counter()
    result, trained = train(request, ctx)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    rows = [r for r in ctx.rows if "tokens" in r]
    warm = rows[min(5, len(rows) - 1)]  # skip the first steps (kernel selection, allocator growth)
    last = rows[-1]
    elapsed = (last["tokens"] / last["tokens_per_s"]) - (warm["tokens"] / warm["tokens_per_s"])
    tps = (last["tokens"] - warm["tokens"]) / max(elapsed, 1e-9)
    out = {"trainer": f"ftp {method} (packing={packing}, {settings.train.resolved_optimizer()})", "tokens_per_s": round(tps), "wall_s": round(wall, 1),
           "peak_gib": round(peak_gib(), 2), "predicted_gib": round(plan.total_gib, 2),
           "final_loss": round(result.metrics["train_loss"], 4)}
    del trained
    reset_peak()
    return out


def run_hf(model_dir: Path, data: Path, work: Path, steps: int, batch: int, accum: int,
           method: str = "lora") -> dict[str, Any]:
    """The plain stack at its defaults: Trainer + PEFT, padded batches, loss on answers only."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    tok = AutoTokenizer.from_pretrained(model_dir)
    rows = []
    for line in data.read_text().splitlines():
        ex = json.loads(line)["messages"]
        prompt = tok(f"<|im_start|>user\n{ex[0]['content']}<|im_end|>\n<|im_start|>assistant\n",
                     add_special_tokens=False)["input_ids"]
        answer = tok(f"{ex[1]['content']}<|im_end|>\n", add_special_tokens=False)["input_ids"]
        ids = (prompt + answer)[:2048]
        rows.append({"input_ids": ids, "labels": ([-100] * len(prompt) + answer)[:2048]})

    def collate(batch_rows: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(r["input_ids"]) for r in batch_rows)
        pad = lambda xs, v: xs + [v] * (width - len(xs))  # noqa: E731
        return {"input_ids": torch.tensor([pad(r["input_ids"], tok.pad_token_id) for r in batch_rows]),
                "labels": torch.tensor([pad(r["labels"], -100) for r in batch_rows]),
                "attention_mask": torch.tensor([pad([1] * len(r["input_ids"]), 0) for r in batch_rows])}

    if method == "qlora":
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                   bnb_4bit_compute_dtype=torch.bfloat16)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, quantization_config=quant,
                                                     device_map={"": 0})
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).to(DEVICE)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    seen = {"tokens": 0, "t5": None, "tok5": 0}

    class Count(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if DEVICE == "cuda":
                torch.cuda.synchronize()
            if state.global_step == 5:
                seen["t5"], seen["tok5"] = time.perf_counter(), seen["tokens"]

    real_collate = collate

    def counting(batch_rows: list[dict[str, Any]]) -> dict[str, Any]:
        seen["tokens"] += sum(len(r["input_ids"]) for r in batch_rows)
        return real_collate(batch_rows)

    reset_peak()
    args = TrainingArguments(output_dir=str(work / "hf"), max_steps=steps, per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, learning_rate=2e-4, bf16=True, logging_steps=1000,
                             save_strategy="no", report_to=[], remove_unused_columns=False, dataloader_num_workers=0,
                             use_cpu=DEVICE == "cpu")
    start = time.perf_counter()
    Trainer(model=model, args=args, train_dataset=rows, data_collator=counting, callbacks=[Count()]).train()
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    end = time.perf_counter()
    tps = (seen["tokens"] - seen["tok5"]) / (end - seen["t5"])
    out = {"trainer": f"HF Trainer + PEFT {method} (padded, adamw_torch)", "tokens_per_s": round(tps), "wall_s": round(end - start, 1),
           "peak_gib": round(peak_gib(), 2)}
    del model
    reset_peak()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--accum", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ftp-bench"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--method", choices=["lora", "qlora"], default="lora")
    args = parser.parse_args()
    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(args.shape, args.work / args.shape)
    from transformers import AutoTokenizer

    data = args.work / "data.jsonl"
    make_data(data, 4000, AutoTokenizer.from_pretrained(model_dir))
    results = []
    b, a, m = args.batch, args.accum, args.method
    for name, fn in (("ftp-packed", lambda: run_ftp(model_dir, data, args.work, args.steps, b, a, True, m)),
                     ("ftp-padded", lambda: run_ftp(model_dir, data, args.work, args.steps, b, a, False, m)),
                     ("hf", lambda: run_hf(model_dir, data, args.work, args.steps, b, a, m))):
        try:
            r = fn()
        except Exception as exc:  # record and go on: one failure must not lose the other numbers
            r = {"trainer": name, "error": f"{type(exc).__name__}: {exc}"[:500]}
        if "tokens_per_s" in r:
            r["mfu"] = round(4 * matmul_params(args.shape) * r["tokens_per_s"] / PEAK_BF16, 4)
        print(json.dumps(r), flush=True)
        results.append(r)
    payload = {"shape": args.shape, "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu", "steps": args.steps, "batch": args.batch,
               "accum": args.accum, "method": args.method, "lora": "r=16 all-linear", "dtype": "bf16", "gradient_checkpointing": True,
               "results": results}
    args.out.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload), file=sys.stderr)


if __name__ == "__main__":
    main()
