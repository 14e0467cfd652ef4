"""Evaluation cost: ``ftp eval`` (base and fine-tuned, every metric, paired intervals, the report) against
a plain hand-written ``generate`` loop over the same model, adapter, test split and answer budget.

    python benchmarks/eval_gpu.py --work /tmp/ev --out results/eval_gpu.json [--task intent] [--repeats 3]

1. Trains an adapter once with ftp's shortest pipeline file (the quality benchmark's task data,
   ``backends.local.compile=false``), so both sides answer with a real fine-tuned model.
2. Then rounds of A B C, each in a fresh process: A = ``ftp eval MODEL --data test.jsonl`` (in the
   process, timed from the command's start to the written report: model load, both candidates'
   answers, every metric, 10,000-resample comparisons, eval.json/eval.html); B and C = the plain loop
   (``benchmarks/quality/evaluate.py``'s loader and batched ``generate``: bf16, left padding, longest
   prompts first, greedy) at batch 8 and with the whole split in one batch, answering the fine-tuned
   model and then the base model with the adapter switched off (one load, as ftp does). Round 0 is the
   warm-up and is excluded; medians and ranges of the rest, and the ratio to the fastest plain loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "quality"))


def train_adapter(work: Path, task: str, model: str, extra: list[str]) -> tuple[Path, Path]:
    """The fine-tuned adapter and the test split (trained once per work folder)."""
    import tasks
    from run import pipeline_yaml

    data = work / "data"
    tasks.write_task(data, task)
    folder = work / "train"
    folder.mkdir(parents=True, exist_ok=True)
    done = sorted(folder.glob(f"runs/{task}/*/model/adapter_config.json"))
    if not done:
        (folder / "pipeline.yaml").write_text(pipeline_yaml(task, data / task, model), encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "ftp", "run", "pipeline.yaml", "--backend", "local", "--quiet",
                               "--steps", "validate,split,train", "--set", "backends.local.compile=false",
                               *[x for e in extra for x in ("--set", e)]],
                              cwd=folder, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"training failed: {proc.stderr[-2000:]}")
        done = sorted(folder.glob(f"runs/{task}/*/model/adapter_config.json"))
    return done[-1].parent, data / task / "test.jsonl"


def one_ftp(adapter: Path, test: Path, report: Path) -> dict[str, Any]:
    from click.testing import CliRunner

    from ftp.cli import cli

    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["eval", str(adapter), "--data", str(test), "--report", str(report), "--json"],
                                catch_exceptions=False)
    wall = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(result.output)
    payload = json.loads((report / "eval.json").read_text())
    return {"wall_s": wall, "generate_s": {k: v["seconds"] for k, v in payload["timing"].items()},
            "decoding": payload["decoding"], "exact_match": {c: m.get("exact_match") for c, m in payload["metrics"].items()},
            "metrics": payload["metrics_chosen"]["names"], "phases": payload.get("phases", {})}


def one_plain(adapter: Path, test: Path, batch: int, max_new_tokens: int, device: str) -> dict[str, Any]:
    import torch
    from evaluate import generate, load_candidate, load_tokenizer, read_conversations, render_prompt
    from run import resolve_model

    start = time.perf_counter()
    meta = json.loads((adapter / "ftp_model.json").read_text())
    base_dir = resolve_model(meta["base_model"])
    tok = load_tokenizer(base_dir)
    model = load_candidate(base_dir, adapter, device, "bfloat16" if device == "cuda" else "float32")
    loaded = time.perf_counter()
    conversations = read_conversations(test)
    prompts = [render_prompt(tok, c) for c in conversations]
    size = len(prompts) if batch <= 0 else batch
    timing, answers = {}, {}
    for label in ("fine-tuned", "base"):
        t0 = time.perf_counter()
        if label == "base":
            with model.disable_adapter():
                answers[label] = generate(model, tok, prompts, max_new_tokens, size, device)
        else:
            answers[label] = generate(model, tok, prompts, max_new_tokens, size, device)
        if device == "cuda":
            torch.cuda.synchronize()
        timing[label] = time.perf_counter() - t0
    refs = [c[-1]["content"].strip() for c in conversations]
    exact = {k: sum(a.strip() == r for a, r in zip(v, refs)) / len(refs) for k, v in answers.items()}
    return {"wall_s": time.perf_counter() - start, "load_s": loaded - start, "generate_s": timing,
            "batch": size, "exact_match": exact}


def child(args: argparse.Namespace) -> None:
    adapter, test = Path(args.adapter), Path(args.test)
    if args.one == "ftp":
        out = one_ftp(adapter, test, Path(args.report))
    else:
        out = one_plain(adapter, test, int(args.one.split(":")[1]), args.max_new_tokens, args.device)
    print("RESULT " + json.dumps(out))


def run_child(config: str, adapter: Path, test: Path, report: Path, max_new_tokens: int, device: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", config, "--adapter", str(adapter), "--test", str(test),
           "--report", str(report), "--max-new-tokens", str(max_new_tokens), "--device", device]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{config} failed: {proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", default="/tmp/eval-bench")
    ap.add_argument("--out", default="eval_gpu.json")
    ap.add_argument("--task", default="intent")
    ap.add_argument("--model", default="builtin:gemma-3-270m")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--commit", default="")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test of the script itself")
    ap.add_argument("--plain", default="8,0", help="batch sizes of the plain loop (0: the whole split at once)")
    ap.add_argument("--train-set", action="append", default=[], help="extra --set for the training run")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--adapter", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--test", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--report", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--max-new-tokens", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        child(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from run import ftp_env

    os.environ["PYTHONPATH"] = ftp_env(work)[0]["PYTHONPATH"]  # children import this checkout's ftp
    adapter, test = train_adapter(work, args.task, args.model, args.train_set)
    print(f"adapter {adapter}", flush=True)
    rounds: list[dict[str, Any]] = []
    budget = 0
    plains = [f"plain:{b.strip()}" for b in args.plain.split(",") if b.strip()]
    for r in range(args.repeats + 1):
        row: dict[str, Any] = {"round": r, "warmup": r == 0}
        row["ftp"] = run_child("ftp", adapter, test, work / f"report-{r}", 0, args.device)
        budget = row["ftp"]["decoding"]["max_new_tokens"]
        for config in plains:
            row[config] = run_child(config, adapter, test, work / "unused", budget, args.device)
        rounds.append(row)
        print(json.dumps({k: (v["wall_s"] if isinstance(v, dict) else v) for k, v in row.items()}), flush=True)
    timed = [r for r in rounds if not r["warmup"]]
    result: dict[str, Any] = {"task": args.task, "test_examples": sum(1 for _ in test.open()), "commit": args.commit,
                              "max_new_tokens": budget, "rounds": rounds}
    for config in ("ftp", *plains):
        gen = [sum(r[config]["generate_s"].values()) for r in timed]
        result[config] = {"wall_s": summary([r[config]["wall_s"] for r in timed]), "generate_both_s": summary(gen)}
    fastest = min(plains, key=lambda c: result[c]["wall_s"]["median"])
    result["fastest_plain"] = fastest
    result["ratio_wall_ftp_over_fastest_plain"] = result["ftp"]["wall_s"]["median"] / result[fastest]["wall_s"]["median"]
    result["ratio_generate_ftp_over_fastest_plain"] = (result["ftp"]["generate_both_s"]["median"]
                                                       / result[fastest]["generate_both_s"]["median"])
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("results: " + json.dumps({k: result[k] for k in ("ftp", *plains, "fastest_plain",
                                                           "ratio_wall_ftp_over_fastest_plain",
                                                           "ratio_generate_ftp_over_fastest_plain")}), flush=True)


if __name__ == "__main__":
    main()
