"""Traffic for the monitoring tests: prompts drawn like the tiny task's training data (conftest's
``make_examples``), and prompts from a shifted distribution (longer, digits, another script)."""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import COLOURS, THINGS

TRAIN_TICKETS = 300  # make_examples(300) numbers its tickets 0..299


def like_training(n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """(prompt, right answer) with the training data's template and ticket numbers."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colour, thing = rng.choice(COLOURS), rng.choice(THINGS)
        text = f"Ticket {rng.randrange(TRAIN_TICKETS)}: my {thing} is {colour} and it is broken."
        out.append(([{"role": "user", "content": text}], json.dumps({"colour": colour})))
    return out


def shifted(n: int, seed: int) -> list[tuple[list[dict[str, str]], str]]:
    """Another population: error reports with codes and numbers, partly in Chinese, twice as long."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        colour = rng.choice(COLOURS)
        code = rng.randrange(100000, 999999)
        text = (f"ERROR #{code} on host srv-{rng.randrange(1000)}: 服务器的{rng.choice(THINGS)}坏了, 颜色 {colour}; "
                f"retry={rng.randrange(9)} ts=2026-12-{rng.randrange(1, 28):02d}T{rng.randrange(24):02d}:00Z !!!")
        out.append(([{"role": "user", "content": text}], json.dumps({"colour": colour})))
    return out


def post(port: int, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def send(port: int, model: str, prompts: list[tuple[list[dict[str, str]], str]], slot: str | None = None,
         threads: int = 8) -> list[tuple[int, dict[str, Any], str]]:
    """Each prompt as a chat completion, ``threads`` at a time: (status, body, right answer)."""
    headers = {"x-ftp-slot": slot} if slot else {}

    def one(item: tuple[list[dict[str, str]], str]) -> tuple[int, dict[str, Any], str]:
        status, body = post(port, "/v1/chat/completions",
                            {"model": model, "messages": item[0], "max_tokens": 8, "temperature": 0}, headers)
        return status, body, item[1]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, prompts))
