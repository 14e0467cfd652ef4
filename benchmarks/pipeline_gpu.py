"""The small model's whole pipeline on one GPU: ``ftp run`` with the shortest pipeline file against the plain
TRL script followed by a plain ``generate`` evaluation, interleaved and repeated.

    python benchmarks/pipeline_gpu.py --out results/pipeline_gemma270m.json [--task intent] [--repeats 3] \
        [--warmup 1] [--budget-s 480] [--resume]
    python benchmarks/pipeline_gpu.py --model PATH --device cpu --sizes 40,10,10 --repeats 1 --warmup 0 --out o.json

One quality task (benchmarks/quality/tasks.py, default ``intent``, 800/100/120 examples) and the embedded
Gemma 3 270M (``builtin:gemma-3-270m``, converted once by ftp's resolver before any run, so neither side
pays for it):

- A, ``ftp``: ``python -m ftp run pipeline.yaml --backend local --json --steps validate,split,train,review,
  evaluate --set train.seed=1`` on the pipeline file quality/run.py writes (``name``, ``data``, ``model:
  {base}``, nothing else). Its train and evaluate steps are timed from the run's ``state.json`` (each
  step's ``seconds``), the whole command by this script. gate, register and deploy are left out by
  default (``--ftp-steps``): the TRL side has nothing like them.
- B, ``trl``: pipeline_trl.py in one process: quality/trl_sft.py (LoRA r=16, alpha 32, dropout 0.05, all
  linear layers, lr 2e-4, batch 8, 3 epochs, validation each epoch), then quality/evaluate.py's batched
  greedy ``generate`` of the fine-tuned and the base model on the test split (bf16, 64 prompts a batch
  on a GPU; ``--eval-dtype``, ``--eval-batch``). Train = the TRL script's whole ``main`` (load, data,
  train, save); evaluate = both evaluations; total = the process.

Rounds as in train_gpu.py (bench_rounds.py): a warm-up round excluded, then ``--repeats`` rounds in an order
rotated per round (A B, B A, ...), every run a fresh process, the results file rewritten after every run,
``--resume`` to go on. Summary: median, min, max of train, evaluate and total seconds per side, and B / A
for each (above 1: ftp is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import bench_rounds as rounds

HERE = Path(__file__).resolve().parent
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "tokenizers", "gguf")
METRICS = ["train_s", "evaluate_s", "total_s", "train_loop_s"]
SIDES = {"ftp": "A: ftp run", "trl": "B: TRL script + generate"}
# further sides --sides can add: ftp with one of its speed-ups switched off, to measure what it buys
VARIANTS = {"ftp-unfused": ["backends.local.fused_norms=false"], "ftp-eager": ["backends.local.cuda_graphs=false"]}
NOTED = ("cuda_graphs", "fused_norms", "attention", "warning")  # events of the train step a result keeps


def profiled(folder: Path, profile: bool) -> list[str]:
    """The interpreter, under cProfile for a warm-up run with ``--profile-warmup`` (it is excluded anyway)."""
    return [sys.executable, *(["-m", "cProfile", "-o", str(folder / "profile.prof")] if profile else [])]


def profile_top(folder: Path, n: int = 40) -> dict[str, list[str]]:
    """The functions that took the host's time, by own time and by cumulative time: where a step waits."""
    import io
    import pstats

    if not (folder / "profile.prof").exists():
        return {}
    out = {}
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(str(folder / "profile.prof"), stream=buf).sort_stats(key).print_stats(n)
        out[key] = [line for line in buf.getvalue().splitlines() if line.strip()][-n - 1:]
    return out


def ftp_side(args: argparse.Namespace, folder: Path, env: dict[str, str], profile: bool = False,
             variant: list[str] | None = None) -> dict[str, Any]:
    """``ftp run`` as a user types it; the step times ftp itself recorded in state.json."""
    sets = [f"train.seed={args.seed}", *(["backends.local.devices=cpu"] if args.device == "cpu" else []), *args.ftp_set,
            *(variant or [])]
    cmd = [*profiled(folder, profile), "-m", "ftp", "run", "pipeline.yaml", "--backend", "local", "--json",
           "--steps", args.ftp_steps]
    cmd += [a for s in sets for a in ("--set", s)]
    log = folder / "log.txt"
    r = rounds.run_process(cmd, None, args.run_timeout_s, log, cwd=folder, env=env)
    if "error" in r:
        return r
    events = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    run_dir = folder / next(e["run_dir"] for e in events if e.get("run_dir"))
    steps = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))["steps"]
    report = json.loads((run_dir / "eval.json").read_text(encoding="utf-8")) if (run_dir / "eval.json").exists() else {}
    train = steps["train"].get("outputs") or {}
    return {"train_s": steps["train"].get("seconds"), "evaluate_s": steps["evaluate"].get("seconds"),
            "total_s": r["process_wall_s"], "train_loop_s": train.get("wall_seconds"), "steps": train.get("steps"),
            "step_seconds": {k: v.get("seconds") for k, v in steps.items() if v.get("status") == "done"},
            "eval": {k: {"exact_match": v.get("exact_match")} for k, v in report.get("metrics", {}).items()},
            "eval_settings": report.get("decoding"), "eval_phases": report.get("phases"),
            "train_phases": train.get("phases"), "process_wall_s": r["process_wall_s"], "run_dir": str(run_dir),
            "events": [f"{e.get('event')}: {e.get('message')}" for e in events if e.get("event") in NOTED],
            **profile_of(folder, profile)}


def profile_of(folder: Path, profile: bool) -> dict[str, Any]:
    return {"profile": profile_top(folder)} if profile else {}


def trl_side(args: argparse.Namespace, folder: Path, env: dict[str, str], profile: bool = False) -> dict[str, Any]:
    cmd = [*profiled(folder, profile), str(HERE / "pipeline_trl.py"), "--model", str(args.model_dir),
           "--data", str(args.data),
           "--out", str(folder / "adapter"), "--result", str(folder / "result.json"), "--seed", str(args.seed),
           "--device", args.device, "--eval-batch", str(args.eval_batch), "--eval-dtype", args.eval_dtype]
    r = rounds.run_process(cmd, folder / "result.json", args.run_timeout_s, folder / "log.txt", cwd=folder, env=env)
    return r if "error" in r else {**r, "total_s": r["process_wall_s"], **profile_of(folder, profile)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    per = rounds.summarise(runs, METRICS)
    a, b = per.get("ftp", {}), per.get("trl", {})
    ratios = {m: round(b[m]["median"] / a[m]["median"], 3) for m in METRICS if a.get(m) and b.get(m) and a[m]["median"]}
    return {"sides": per, "trl_over_ftp": ratios, "failed_runs": [r["key"] for r in runs if "error" in r],
            "by_machine": rounds.by_machine(runs, summarise)}


def table(summary: dict[str, Any], header: str) -> str:
    rows = [header, "", "| seconds | A: ftp run, median [min-max] | B: TRL script + generate | B / A |", "|---|---|---|---|"]
    labels = {"train_s": "train step", "evaluate_s": "evaluate step", "total_s": "whole process",
              "train_loop_s": "training loop only"}
    for m, label in labels.items():
        a, b = (summary["sides"].get(side, {}).get(m) for side in SIDES)
        ratio = summary["trl_over_ftp"].get(m)
        rows.append(f"| {label} | {rounds.fmt(a, 1)} | {rounds.fmt(b, 1)} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    for side, per in summary["sides"].items():
        if side not in SIDES:
            rows.append(f"\n{side} ({', '.join(VARIANTS.get(side, []))}): " + ", ".join(
                f"{labels[m]} {rounds.fmt(per.get(m), 1)}" for m in labels if per.get(m)))
    for host, m in summary["by_machine"].items():
        rows.append(f"\nmachine {host}: B / A " + ", ".join(f"{labels[k]} {v:.2f}" for k, v in m["trl_over_ftp"].items()))
    if summary["failed_runs"]:
        rows += ["", f"failed runs (in the results file, with their log tails): {', '.join(summary['failed_runs'])}"]
    return "\n".join(rows)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/ftp-pipeline"))
    p.add_argument("--model", default="builtin:gemma-3-270m", help="builtin:gemma-3-270m or a transformers model folder")
    p.add_argument("--task", default="intent")
    p.add_argument("--sizes", default="800,100,120", help="train,validation,test examples")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=1, help="the training seed of both sides, every run")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--retry-failed", action="store_true")
    p.add_argument("--budget-s", type=float, default=0, help="start no run after this many seconds (0: no limit)")
    p.add_argument("--run-timeout-s", type=float, default=900)
    p.add_argument("--ftp-steps", default="validate,split,train,review,evaluate")
    p.add_argument("--ftp-set", action="append", default=[], metavar="KEY=VALUE", help="another --set for ftp run")
    p.add_argument("--eval-batch", type=int, default=None, help="B's prompts per batch (default 64 on a GPU, 8 on a CPU)")
    p.add_argument("--eval-dtype", choices=["float32", "bfloat16"], default=None,
                   help="B's evaluation dtype (default bfloat16 on a GPU, as ftp evaluates; float32 on a CPU)")
    p.add_argument("--sides", default="ftp,trl", help=f"which to run, of ftp, trl, {', '.join(VARIANTS)}")
    p.add_argument("--profile-warmup", action="store_true",
                   help="run the warm-up rounds under cProfile and record each side's top functions")
    p.add_argument("--commit", default=None)
    args = p.parse_args(argv)
    try:
        args.size_list = tuple(int(x) for x in args.sizes.split(","))
    except ValueError:
        args.size_list = ()
    if len(args.size_list) != 3 or min(args.size_list) < 1:
        rounds.user_error(f"--sizes {args.sizes!r}: give three positive numbers, train,validation,test")
    args.side_list = [x for x in args.sides.split(",") if x]
    unknown = [x for x in args.side_list if x not in SIDES and x not in VARIANTS]
    if unknown or not args.side_list:
        rounds.user_error(f"--sides {args.sides!r}: choose from {', '.join([*SIDES, *VARIANTS])}")
    if args.repeats < 0 or args.warmup < 0:
        rounds.user_error("--repeats and --warmup must be at least 0")
    return args


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse(argv)
    qr = rounds.quality_run()
    if args.task not in qr.task_data.TASKS:
        rounds.user_error(f"--task {args.task!r}: known tasks are {', '.join(qr.task_data.TASKS)}")
    if args.device == "auto":
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.eval_batch = args.eval_batch or (64 if args.device == "cuda" else 8)
    args.eval_dtype = args.eval_dtype or ("bfloat16" if args.device == "cuda" else "float32")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    rounds.use_this_checkout(work)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "FTP_RUNS_DIR": "runs", "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    args.model_dir = qr.resolve_model(args.model)  # converted here, once: neither side's time includes it
    spec = args.model if args.model.startswith("builtin:") else str(args.model_dir)
    info = qr.task_data.write_task(work / "data", args.task, args.data_seed, args.size_list)
    args.data = work / "data" / args.task
    identity = {"benchmark": "pipeline_gpu", "model": args.model, "task": args.task, "sizes": list(args.size_list),
                "data_seed": args.data_seed, "seed": args.seed, "device": args.device, "ftp_steps": args.ftp_steps,
                "ftp_set": args.ftp_set, "eval_batch": args.eval_batch, "eval_dtype": args.eval_dtype,
                **({"sides": args.side_list} if args.side_list != list(SIDES) else {})}
    meta = {"model_dir": str(args.model_dir), "data": info.get("stats"), "repeats": args.repeats, "warmup": args.warmup,
            "sides": SIDES, **rounds.provenance(args.commit, PACKAGES)}
    results = rounds.ResultsFile(args.out, identity, meta, args.resume, args.fresh)
    header = (f"{args.model} on {args.task} ({'/'.join(map(str, args.size_list))} examples), {args.device}, "
              f"{args.warmup} warm-up + {args.repeats} timed round(s)")
    print(header, flush=True)

    def run_one(round_: int, side: str) -> dict[str, Any]:
        folder = work / "runs" / f"r{round_}-{side}"
        shutil.rmtree(folder, ignore_errors=True)  # a half-done attempt starts over
        folder.mkdir(parents=True)
        profile = args.profile_warmup and round_ < args.warmup
        if side == "trl":
            return trl_side(args, folder, env, profile)
        (folder / "pipeline.yaml").write_text(qr.pipeline_yaml(args.task, args.data, spec), encoding="utf-8")
        return ftp_side(args, folder, env, profile, VARIANTS.get(side))

    def write(complete: bool = False) -> None:
        s = summarise(results.runs)
        results.write(s, table(s, header), complete)

    todo = rounds.pending(rounds.plan(args.side_list, args.repeats, args.warmup), args.warmup, results, args.retry_failed)
    left = rounds.execute(todo, args.warmup, results, run_one, args.budget_s, started, write)
    s = summarise(results.runs)
    results.write(s, table(s, header), not left)
    print(table(s, header))
    print(f"results: {args.out}")
    sys.exit(1 if s["failed_runs"] else 0 if not left else 3)


if __name__ == "__main__":
    main()
