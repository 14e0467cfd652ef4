"""The training benchmark's model and data (benchmarks/train_gpu.py): a random Llama of a given shape with a
small byte-level tokenizer, synthetic chat data with about 2,000 real tokens per step, and the device helpers
both trainers' sides share. Speed does not depend on the weights, so random ones spare a download."""

from __future__ import annotations

import functools
import json
import math
import random
from pathlib import Path
from typing import Any

SHAPES = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096),  # a CPU smoke test of the benchmark
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256),
    # ~19B parameters: full fine-tuning (bf16 weights, gradients, AdamW states: ~8 bytes a parameter, ~150 GB)
    # does not fit one H200, and does on two with FSDP (train_ddp.py --method full --configs 2-fsdp)
    "20b": dict(hidden_size=6144, intermediate_size=16384, num_hidden_layers=44, num_attention_heads=48,
                num_key_value_heads=8, vocab_size=128256),
}
# tokens per packed row and longest example; the tiny shape's data is scaled down with it, so that the CPU
# smoke test does not spend its time in padded 2,048-token attention
SEQ = {"1b": 2048, "8b": 2048, "20b": 2048, "tiny": 256}
EXAMPLES = {"1b": 4000, "8b": 4000, "20b": 4000, "tiny": 600}
PEAK_BF16 = 989e12  # H200 dense bf16 FLOP/s, for MFU


@functools.lru_cache(maxsize=None)
def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def effective_method(method: str) -> str:
    """4-bit weights (bitsandbytes NF4) are a CUDA feature: on a CPU both sides train plain LoRA instead."""
    return "lora" if method == "qlora" and device() != "cuda" else method


def peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device() == "cuda" else None


def reset_peak() -> None:
    import gc

    import torch

    gc.collect()
    if device() == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()


def build_model(shape: str, folder: Path) -> Path:
    """Random weights (seed 0) in bf16, saved with a small byte-level tokenizer (ids stay below the vocab);
    written beside the folder and renamed, so an interrupted build is never taken for a model."""
    import shutil

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    if (folder / "config.json").exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    words = [f"w{i}" for i in range(3000)]
    specials = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator([" ".join(random.Random(i).sample(words, 50)) for i in range(2000)],
                            trainers.BpeTrainer(vocab_size=4000, special_tokens=specials,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(partial)
    config = LlamaConfig(**SHAPES[shape], max_position_embeddings=4096, tie_word_embeddings=False,
                         pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device()):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(partial)
    del model
    reset_peak()
    partial.rename(folder)
    return folder


def make_data(path: Path, n: int, tokenizer: Any, seq: int = 2048) -> None:
    """Lognormal lengths, median ~350 tokens, clipped to 32..2048 (scaled by seq / 2048); the answer is ~20%
    of each example."""
    rng, scale = random.Random(0), seq / 2048
    words = [f"w{i}" for i in range(3000)]
    per_word = len(tokenizer(" ".join(words[:200]), add_special_tokens=False)["input_ids"]) / 200
    with path.open("w") as fh:
        for _ in range(n):
            tokens = min(seq, max(int(32 * scale), int(rng.lognormvariate(math.log(350 * scale), 0.6))))
            total = max(8, int(tokens / per_word) - 12)
            answer = max(2, total // 5)
            user, assistant = " ".join(rng.choices(words, k=total - answer)), " ".join(rng.choices(words, k=answer))
            fh.write(json.dumps({"messages": [{"role": "user", "content": user},
                                              {"role": "assistant", "content": assistant}]}) + "\n")


def prepare(shape: str, work: Path) -> tuple[Path, Path]:
    """The model folder and the data file, made once per work folder (the data is seeded, so a rebuilt
    machine trains on the same examples)."""
    from transformers import AutoTokenizer

    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_model(shape, work / shape)
    data = work / "data.jsonl"
    if not data.exists():
        tmp = data.with_suffix(".tmp")
        make_data(tmp, EXAMPLES[shape], AutoTokenizer.from_pretrained(model_dir), SEQ[shape])
        tmp.replace(data)
    return model_dir, data


def matmul_params(shape: str) -> int:
    """Decoder linears + lm_head: what MFU counts (frozen weights get no weight gradient: 4N FLOPs a token)."""
    s = SHAPES[shape]
    h, i, L, heads, kv, v = (s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"],
                             s["num_attention_heads"], s["num_key_value_heads"], s["vocab_size"])
    head = h // heads
    return L * (h * h * 2 + 2 * h * kv * head + 3 * h * i) + h * v


def mfu(shape: str, tokens_per_s: float) -> float:
    return round(4 * matmul_params(shape) * tokens_per_s / PEAK_BF16, 4)
