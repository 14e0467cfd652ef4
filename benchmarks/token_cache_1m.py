"""Tokenisation cache at scale: time and peak memory to tokenise-and-cache 1M examples, then to train from the cache.

    .venv/bin/python benchmarks/token_cache_1m.py --n 1000000 --work /tmp/tc1m --label after \
        --out benchmarks/results/token_cache_1m.json

Each phase runs in its own process (peak RSS is per process): ``cold`` tokenises the file and writes the
cache (``encode_file``, as the train step calls it); ``warm`` reads it back and touches every row once, as
an epoch does. The tokenizer is a byte-level BPE trained here on the task's text (no download), with a
ChatML template; the data is the tests' colour task, one short ticket per example.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
THINGS = ["car", "house", "shirt", "apple", "door", "lamp", "boat", "chair", "cup", "bike"]
MAX_LENGTH = 128


def example(rng: random.Random, i: int) -> dict[str, Any]:
    colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
    text = f"Ticket {i}: my {thing} is {colour} and it is broken; please send someone to look at the {thing}."
    return {"messages": [{"role": "user", "content": text},
                         {"role": "assistant", "content": json.dumps({"colour": colour, "thing": thing})}]}


def make_data(path: Path, n: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps(example(rng, i)) + "\n")


def make_tokenizer(out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(1)
    corpus = [json.dumps(example(rng, i)) for i in range(2000)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHATML
    fast.save_pretrained(out)


class Reporter:
    def event(self, kind: str, **fields: Any) -> None:
        print(f"  [{kind}] {fields.get('message', '')}", file=sys.stderr)


class Context:
    reporter = Reporter()


def phase(work: Path) -> dict[str, Any]:
    """In this process: encode_file (from the cache when it is there), then every row read once."""
    from ftp.backends.local.chat import chat_format
    from ftp.backends.local.modeling import load_tokenizer
    from ftp.backends.local.training import encode_file
    from ftp.data.files import dataset_ref

    tok_dir = work / "tokenizer"
    fmt = chat_format(load_tokenizer(tok_dir), "tokenizer")
    ref = dataset_ref(work / "data.jsonl", "train")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rows = encode_file(fmt, ref, tok_dir, MAX_LENGTH, Context(), "train", "assistant", "drop")  # type: ignore[arg-type]
    t1 = time.perf_counter()
    tokens = sum(len(rows[i].input_ids) for i in range(len(rows)))  # an epoch's reads, in order
    t2 = time.perf_counter()
    return {"examples": len(rows), "tokens": tokens, "encode_file_s": round(t1 - t0, 2),
            "read_every_row_s": round(t2 - t1, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_before_mib": round(rss0 / 1024, 1)}


def run_phase(work: Path, name: str) -> dict[str, Any]:
    env = {**os.environ, "FTP_CACHE_DIR": str(work / "cache")}
    out = subprocess.run([sys.executable, __file__, "--phase", name, "--work", str(work)], env=env,
                         capture_output=True, text=True, check=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/token_cache_1m"))
    ap.add_argument("--label", default="current", help="the key of this measurement in --out (before, after)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.work)))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    data = args.work / "data.jsonl"
    if not data.exists() or sum(1 for _ in data.open("rb")) != args.n:
        make_data(data, args.n)
    if not (args.work / "tokenizer" / "tokenizer.json").exists():
        make_tokenizer(args.work / "tokenizer")
    shutil.rmtree(args.work / "cache", ignore_errors=True)
    cold, warm = run_phase(args.work, "cold"), run_phase(args.work, "warm")
    cache = args.work / "cache" / "tokenized"
    result = {"cold_tokenise_and_cache": cold, "warm_from_cache": warm,
              "cache_mib": round(sum(p.stat().st_size for p in cache.iterdir()) / 2**20, 1)}
    print(json.dumps(result, indent=2))
    if args.out:
        old = json.loads(args.out.read_text()) if args.out.exists() else {}
        old.update({"n": args.n, "machine": f"{os.cpu_count()} CPU cores", "max_length": MAX_LENGTH,
                    "command": " ".join(["python", *sys.argv]), args.label: result})
        args.out.write_text(json.dumps(old, indent=2) + "\n")


if __name__ == "__main__":
    main()
