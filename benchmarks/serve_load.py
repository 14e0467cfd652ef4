"""Load test for any OpenAI-compatible chat server (``ftp serve``, vLLM, SGLang, Azure OpenAI behind a proxy).

    python benchmarks/serve_load.py --url http://127.0.0.1:8000/v1 --model ticket-triage \\
        --requests 1000 --concurrency 16 --max-tokens 8 [--stream] [--prompts chat.jsonl] [--out results.json]

``concurrency`` clients share one connection pool (asyncio + httpx) and send ``requests`` chat
completions between them, each as soon as its previous one finished (a closed loop, so the rate is
what the server sustains). Per request: latency to the last byte, time to the first content chunk
when streaming, usage tokens, and the HTTP status or the transport error. Printed: p50/p95/p99
latency (and TTFT), requests/s, completion tokens/s and the errors by kind; the exit status is 1 if
any request failed. ``run_load(...)`` returns the same summary as a dict.

Warm-up requests (``--warmup``, default 1) go first and are not counted: a server that loads its
model on the first request would otherwise put the load time into every client's first latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

BUILTIN_PROMPTS = [
    [{"role": "user", "content": "Ticket 1: my car is red and it is broken."}],
    [{"role": "user", "content": "Ticket 2: the lamp in the hall is blue and flickers."}],
    [{"role": "system", "content": "Answer as JSON."}, {"role": "user", "content": "Ticket 3: a green door."}],
    [{"role": "user", "content": "Summarise in five words: the printer jams on every second page."}],
]


@dataclass
class Outcome:
    """One request: ``error`` is None when it succeeded, else its status (``"500"``) or failure kind."""

    latency_s: float
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


def http_module() -> ModuleType:
    """httpx2 (what openai >= 3 installs), else httpx: the same API."""
    try:
        import httpx2

        return httpx2
    except ImportError:
        import httpx

        return httpx


def completions_url(url: str) -> str:
    """``.../v1/chat/completions`` from a base URL given with or without ``/v1`` (as OpenAI clients take it)."""
    url = url.rstrip("/")
    if url.endswith("/chat/completions"):
        return url
    return f"{url}/chat/completions" if url.endswith("/v1") else f"{url}/v1/chat/completions"


def read_prompts(path: Path) -> list[list[dict[str, Any]]]:
    """Chat JSONL (``{"messages": [...]}`` per line); a trailing assistant message (the reference
    answer of training data) is dropped, so the server is asked what the data's user asked."""
    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            messages = json.loads(line)["messages"]
        except (ValueError, KeyError, TypeError):
            raise SystemExit(f"{path}:{number}: not a chat line; want {{\"messages\": [...]}}") from None
        if messages and messages[-1].get("role") == "assistant":
            messages = messages[:-1]
        if messages:
            prompts.append(messages)
    if not prompts:
        raise SystemExit(f"{path}: no prompts in the file")
    return prompts


async def one_request(client: Any, url: str, body: dict[str, Any]) -> Outcome:
    """Send one completion and time it; failures become an ``Outcome`` with ``error`` set, never raise."""
    start = time.perf_counter()
    try:
        if body.get("stream"):
            return await streamed(client, url, body, start)
        answer = await client.post(url, json=body)
        if answer.status_code != 200:
            return Outcome(time.perf_counter() - start, error=str(answer.status_code))
        usage = answer.json().get("usage") or {}
        return Outcome(time.perf_counter() - start, None, int(usage.get("prompt_tokens", 0)),
                       int(usage.get("completion_tokens", 0)))
    except Exception as exc:  # noqa: BLE001 (a load test counts failures, it does not stop at the first)
        return Outcome(time.perf_counter() - start, error=type(exc).__name__)


async def streamed(client: Any, url: str, body: dict[str, Any], start: float) -> Outcome:
    """A streamed completion read event by event: TTFT at the first content delta, usage from the last chunk."""
    ttft: float | None = None
    usage: dict[str, Any] = {}
    error: str | None = None
    async with client.stream("POST", url, json=body) as answer:
        if answer.status_code != 200:
            await answer.aread()
            return Outcome(time.perf_counter() - start, error=str(answer.status_code))
        done = False
        async for line in answer.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            event = json.loads(data)
            if "error" in event:
                error = "stream_error"
                break
            if ttft is None and any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
                ttft = time.perf_counter() - start
            usage = event.get("usage") or usage
    if error is None and not done:
        error = "stream_cut"  # the server closed the stream without [DONE]
    return Outcome(time.perf_counter() - start, ttft, int(usage.get("prompt_tokens", 0)),
                   int(usage.get("completion_tokens", 0)), error)


def request_body(model: str, messages: list[dict[str, Any]], max_tokens: int, stream: bool,
                 user: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
    if stream:
        body.update(stream=True, stream_options={"include_usage": True})
    if user:
        body["user"] = user
    return body


async def drive(url: str, model: str, requests: int, concurrency: int, max_tokens: int, stream: bool,
                prompts: list[list[dict[str, Any]]], token: str | None, users: int, timeout: float,
                warmup: int) -> tuple[list[Outcome], float]:
    """``concurrency`` workers over one pooled client; (outcomes in request order, seconds taken)."""
    http = http_module()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = http.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    target = completions_url(url)

    def body(i: int) -> dict[str, Any]:
        return request_body(model, prompts[i % len(prompts)], max_tokens, stream, f"load-{i % users}" if users else None)

    async with http.AsyncClient(headers=headers, limits=limits, timeout=timeout) as client:
        for i in range(warmup):
            await one_request(client, target, body(i))
        outcomes: list[Outcome | None] = [None] * requests
        todo = iter(range(requests))

        async def worker() -> None:
            for i in todo:  # one shared iterator: each index is taken by exactly one worker
                outcomes[i] = await one_request(client, target, body(i))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, requests)))))
        elapsed = time.perf_counter() - start
    return [o for o in outcomes if o is not None], elapsed


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100) by linear interpolation between closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread_ms(seconds: list[float]) -> dict[str, float | None]:
    ms = [s * 1000 for s in seconds]
    out = {f"p{q}": percentile(ms, q) for q in (50, 95, 99)}
    out.update(mean=sum(ms) / len(ms) if ms else None, max=max(ms) if ms else None)
    return {k: None if v is None else round(v, 2) for k, v in out.items()}


def summarise(outcomes: list[Outcome], elapsed: float, config: dict[str, Any]) -> dict[str, Any]:
    """The numbers printed and written: latency over successful requests, errors by kind, rates."""
    ok = [o for o in outcomes if o.error is None]
    errors = Counter(o.error for o in outcomes if o.error is not None)
    completion = sum(o.completion_tokens for o in ok)
    result: dict[str, Any] = {
        "config": config, "requests": len(outcomes), "succeeded": len(ok), "error_count": sum(errors.values()),
        "errors": dict(sorted(errors.items())), "duration_s": round(elapsed, 3),
        "requests_per_s": round(len(outcomes) / elapsed, 2) if elapsed > 0 else None,
        "prompt_tokens": sum(o.prompt_tokens for o in ok), "completion_tokens": completion,
        "completion_tokens_per_s": round(completion / elapsed, 2) if elapsed > 0 else None,
        "latency_ms": spread_ms([o.latency_s for o in ok]),
    }
    if config.get("stream"):
        result["ttft_ms"] = spread_ms([o.ttft_s for o in ok if o.ttft_s is not None])
    return result


def run_load(url: str, model: str, requests: int = 1000, concurrency: int = 16, max_tokens: int = 16,
             stream: bool = False, prompts: list[list[dict[str, Any]]] | None = None, token: str | None = None,
             users: int = 0, timeout: float = 120.0, warmup: int = 1) -> dict[str, Any]:
    """Send ``requests`` chat completions from ``concurrency`` clients and summarise them (see the module
    docstring); ``users``: spread the requests over that many ``user`` values (sticky routing), 0 for none."""
    if requests < 1 or concurrency < 1 or max_tokens < 1:
        raise ValueError("requests, concurrency and max_tokens must be at least 1")
    config = {"url": url, "model": model, "requests": requests, "concurrency": concurrency,
              "max_tokens": max_tokens, "stream": stream, "users": users, "warmup": warmup}
    outcomes, elapsed = asyncio.run(drive(url, model, requests, concurrency, max_tokens, stream,
                                          prompts or BUILTIN_PROMPTS, token, users, timeout, warmup))
    return summarise(outcomes, elapsed, config)


def report(result: dict[str, Any]) -> str:
    """The summary as a few lines for a terminal or a CI log."""
    def line(name: str, spread: dict[str, Any]) -> str:
        return f"{name:8} p50 {spread['p50']} ms  p95 {spread['p95']} ms  p99 {spread['p99']} ms  max {spread['max']} ms"

    c = result["config"]
    lines = [f"{result['requests']} requests, concurrency {c['concurrency']}, max_tokens {c['max_tokens']}"
             f"{', streamed' if c['stream'] else ''}: {result['duration_s']} s",
             line("latency", result["latency_ms"])]
    if "ttft_ms" in result:
        lines.append(line("ttft", result["ttft_ms"]))
    lines.append(f"{result['requests_per_s']} requests/s, {result['completion_tokens_per_s']} completion tokens/s "
                 f"({result['completion_tokens']} tokens)")
    errors = ", ".join(f"{k}: {v}" for k, v in result["errors"].items())
    lines.append(f"errors: {result['error_count']}" + (f" ({errors})" if errors else ""))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8000/v1")
    parser.add_argument("--model", required=True, help="model name to ask for (a deployment, NAME:V, NAME@alias)")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--stream", action="store_true", help="stream (SSE) and measure time to first token")
    parser.add_argument("--prompts", type=Path, help="chat JSONL to take prompts from (default: a few built in)")
    parser.add_argument("--token-env", metavar="VAR", help="send 'Authorization: Bearer $VAR'")
    parser.add_argument("--users", type=int, default=0, help="spread requests over N 'user' values (sticky routing)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument("--warmup", type=int, default=1, help="uncounted requests first (model loading)")
    parser.add_argument("--out", type=Path, help="write the summary as JSON here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            print(f"--token-env {args.token_env}: the variable is not set or empty", file=sys.stderr)
            return 2
    prompts = read_prompts(args.prompts) if args.prompts else None
    try:
        result = run_load(args.url, args.model, args.requests, args.concurrency, args.max_tokens, args.stream,
                          prompts, token, args.users, args.timeout, args.warmup)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 1 if result["error_count"] else 0


if __name__ == "__main__":
    sys.exit(main())
