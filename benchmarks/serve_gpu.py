"""Serving throughput on one GPU: ``ftp serve`` (one base model with the adapter beside it, dynamic
batching) against the plain baseline (``plain_server.py``: a FastAPI route around ``model.generate``,
one request at a time), same fine-tuned adapter, same prompts, same answer budget, greedy.

    python benchmarks/serve_gpu.py --work /tmp/sv --out results/serve_gpu.json [--repeats 3] [--clients 1,8,32]

1. Runs the quickstart (``ftp run examples/quickstart/pipeline.yaml``: train, evaluate, register, smoke
   test, deploy) in ``--work``, so both servers answer with the real fine-tuned Gemma 3 270M adapter.
2. Starts both servers on 127.0.0.1, warms each up (excluded), then rounds: for each client count, ftp
   and plain, in turn first (A B, B A, ...), each a fresh batch of ``clients * --per-client`` requests from that many
   threads over the quickstart's test prompts, non-streamed (plus ftp streamed at each count, for the
   time to first token). Per run: completion tokens/s, requests/s, p50/p95/p99 latency.
3. Medians and ranges over the rounds, and ftp's ratio to the plain server, per client count.
vLLM is not measured: its wheel (hundreds of MB, CUDA builds) cannot be carried to the device machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, proc: subprocess.Popen[bytes], seconds: float = 600) -> None:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server on {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server on {port} not healthy in {seconds} s")


def quickstart(work: Path) -> tuple[Path, Path, list[list[dict[str, Any]]]]:
    """(project folder, adapter folder, test prompts) after one quickstart run in ``work``."""
    project = work / "quickstart"
    if not (project / ".ftp" / "deployments.db").exists():
        shutil.copytree(ROOT / "examples" / "quickstart", project, dirs_exist_ok=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "ftp", "run", "pipeline.yaml", "--backend", "local", "--quiet"],
                       cwd=project, check=True)
        print(f"quickstart run: {time.monotonic() - started:.1f} s", flush=True)
    from ftp.hooks import default_hooks

    version = default_hooks().model_registry("sqlite", project / ".ftp" / "registry.db").get("ticket-triage", 1)
    assert version is not None and version.model.path is not None
    run = sorted((project / "runs").glob("*/*/state.json"))[-1].parent
    tests = [json.loads(line) for line in (run / "data" / "test.jsonl").read_text(encoding="utf-8").splitlines()]
    prompts = [[m for m in row["messages"] if m["role"] != "assistant"] for row in tests]
    return project, version.model.path, prompts


def ask(port: int, model: str, messages: list[dict[str, Any]], max_tokens: int, stream: bool) -> tuple[float, float, int]:
    """(latency s, time to first text s, completion tokens) of one request."""
    import http.client

    body = {"model": model, "messages": messages, "max_tokens": max_tokens, "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    answer = conn.getresponse()
    if answer.status != 200:
        raise RuntimeError(f"{answer.status}: {answer.read()[:300]!r}")
    first, tokens = 0.0, 0
    if stream:
        for raw in answer:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            event = json.loads(line[5:])
            if not first and any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
                first = time.perf_counter() - started
            tokens = int((event.get("usage") or {}).get("completion_tokens", tokens))
    else:
        tokens = int(json.loads(answer.read())["usage"]["completion_tokens"])
    conn.close()
    return time.perf_counter() - started, first, tokens


def load(port: int, model: str, prompts: list[list[dict[str, Any]]], clients: int, requests: int, max_tokens: int,
         stream: bool = False) -> dict[str, Any]:
    """``requests`` requests from ``clients`` threads; throughput and latency percentiles."""
    results: list[tuple[float, float, int]] = []
    taken = iter(range(requests))
    guard = threading.Lock()

    def client() -> None:
        while True:
            with guard:
                i = next(taken, None)
            if i is None:
                return
            outcome = ask(port, model, prompts[i % len(prompts)], max_tokens, stream)
            with guard:
                results.append(outcome)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies = sorted(r[0] for r in results)

    def pct(q: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 1)

    out = {"clients": clients, "requests": len(results), "wall_s": round(wall, 3),
           "tokens_per_s": round(sum(r[2] for r in results) / wall, 1), "requests_per_s": round(len(results) / wall, 2),
           "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
           "completion_tokens": sum(r[2] for r in results)}
    if stream:
        out["ttft_p50_ms"] = round(statistics.median(r[1] for r in results) * 1000, 1)
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("tokens_per_s", "p50_ms", "p95_ms", "requests_per_s", *(("ttft_p50_ms",) if "ttft_p50_ms" in runs[0] else ()))
    return {k: {"median": statistics.median(r[k] for r in runs), "min": min(r[k] for r in runs),
                "max": max(r[k] for r in runs)} for k in keys}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--per-client", type=int, default=4, help="requests per client in each run")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT / "benchmarks" / "quality"))
    from run import ftp_env

    env, shim = ftp_env(args.work)  # this checkout's ftp, installed or not, for this process and the servers
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    if shim is not None:
        sys.path.insert(0, str(shim))
    project, adapter, prompts = quickstart(args.work)
    from ftp.backends.local.models import resolve

    base = resolve("builtin:gemma-3-270m")
    ports = {"ftp": free_port(), "plain": free_port()}
    procs = {
        "ftp": subprocess.Popen([sys.executable, "-m", "ftp", "serve", "-p", "pipeline.yaml", "--port", str(ports["ftp"])],
                                cwd=project),
        "plain": subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "plain_server.py"), "--base", str(base),
                                   "--adapter", str(adapter), "--port", str(ports["plain"])]),
    }
    models = {"ftp": "ticket-triage", "plain": "plain"}
    try:
        for name, proc in procs.items():
            wait_healthy(ports[name], proc)
            load(ports[name], models[name], prompts, 4, 8, args.max_tokens)  # warm-up: loading, CUDA kernels
        counts = [int(c) for c in args.clients.split(",")]
        runs: dict[str, list[dict[str, Any]]] = {}
        for round_ in range(args.repeats):
            for clients in counts:
                for name in ("ftp", "plain") if round_ % 2 == 0 else ("plain", "ftp"):  # A B, then B A
                    result = load(ports[name], models[name], prompts, clients, clients * args.per_client, args.max_tokens)
                    runs.setdefault(f"{name}@{clients}", []).append(result)
                    print(f"round {round_} {name} x{clients}: {result}", flush=True)
                streamed = load(ports["ftp"], models["ftp"], prompts, clients, clients * args.per_client,
                                args.max_tokens, stream=True)
                runs.setdefault(f"ftp-stream@{clients}", []).append(streamed)
                print(f"round {round_} ftp-stream x{clients}: {streamed}", flush=True)
            # after every round, so a lease that ends early still leaves the finished rounds
            write(args, runs, counts, len(prompts), rounds_done=round_ + 1)
    finally:
        for proc in procs.values():
            proc.terminate()


def write(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]], counts: list[int], prompts: int,
          rounds_done: int) -> None:
    import torch

    summaries = {key: summary(value) for key, value in runs.items()}
    ratios = {str(c): round(summaries[f"ftp@{c}"]["tokens_per_s"]["median"]
                            / summaries[f"plain@{c}"]["tokens_per_s"]["median"], 2) for c in counts}
    result = {"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu", "max_tokens": args.max_tokens,
              "per_client": args.per_client, "repeats": args.repeats, "rounds_done": rounds_done, "prompts": prompts,
              "runs": runs, "summary": summaries, "tokens_per_s_ratio_ftp_over_plain": ratios,
              "vllm": "not measured: not installable on the device", "commit": os.environ.get("FTP_COMMIT", "")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps({"rounds_done": rounds_done, "summary": summaries, "ratios": ratios}, indent=2), flush=True)


if __name__ == "__main__":
    main()
