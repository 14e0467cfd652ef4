"""Write a large synthetic chat JSONL file for the data-check benchmark (streamed, fixed seed).

    python benchmarks/make_chat_data.py --n 1000000 --out /tmp/big.jsonl      # about 1 GB

Examples are support tickets with a JSON answer, about 1 KB each; 1% are exact duplicates, 1% carry
an email or phone number, 0.5% break the answer format, so every check has work to do.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

WORDS = ("account billing invoice refund password login crash error screen update order shipping delivery "
         "package tracking thermostat camera dashboard mobile app battery network latency timeout export report "
         "customer urgent please help thanks yesterday today broken slow missing wrong charge twice").split()


def ticket(rng: random.Random, i: int) -> str:
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(110, 150)))
    extra = ""
    if i % 100 == 7:
        extra = f" Contact me at user{i}@example.com."
    elif i % 100 == 8:
        extra = f" Call +44 20 7946 {i % 10000:04d}."
    return f"Ticket {i}: {body}.{extra}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    previous = ""
    with args.out.open("w", encoding="utf-8") as fh:
        for i in range(args.n):
            if i % 100 == 3 and previous:
                fh.write(previous)
                continue
            answer = json.dumps({"category": rng.choice(["billing", "bug", "account", "shipping"]),
                                 "priority": rng.choice(["low", "medium", "high"])})
            if i % 200 == 5:
                answer = "I think this is a billing issue."
            line = json.dumps({"messages": [{"role": "system", "content": "Triage the ticket as JSON."},
                                            {"role": "user", "content": ticket(rng, i)},
                                            {"role": "assistant", "content": answer}]}) + "\n"
            fh.write(line)
            previous = line


if __name__ == "__main__":
    main()
