"""Training throughput on one GPU: ftp's trainer against every TRL SFTTrainer configuration that could be
TRL's fastest, interleaved and repeated.

    python benchmarks/train_gpu.py --shape 8b --out results/train_8b.json [--repeats 3] [--warmup 1] \
        [--configs ftp,trl-defaults,...] [--budget-s 480] [--resume] [--profile]

A Llama model of the given shape is built from a config with random weights (train_model.py; speed does
not depend on them), saved once, and trained with (Q)LoRA r=16, alpha 32, dropout 0.05 on all linear
layers, bf16, gradient checkpointing, lr 2e-4, on the same synthetic chat data (lognormal lengths, median
~350 tokens, up to 2,048; loss on the answer only) with about 2,000 real tokens per optimiser step:

- TRL 1.16 SFTTrainer (train_trl.py): ``trl-defaults`` (batch 4, no packing, its default fused AdamW),
  ``trl-packing`` (best-fit-decreasing, padding-free packing into 1 x 2,048), ``trl-packing-liger``
  (+ Liger kernels, default fused AdamW), ``trl-packing-paged8`` (packing + paged 8-bit AdamW),
  ``trl-packing-liger-paged8`` (all three; ``trl-best`` is an alias of it, the name earlier results used);
- ``ftp``: ftp's trainer, examples packed padding-free into one row of up to 2,048 tokens
  (``train.pack_tokens: 2048``), mask-free variable-length attention, adapters stepped as one flat
  tensor, compiled decoder layers on a GPU (eager on a CPU, where compiling takes minutes), its default
  optimiser (paged 8-bit AdamW for QLoRA);
- ``ftp-eager``: the same without compilation; ``ftp-no-flat``: without the flat adapters;
  ``ftp-rounded``: rows rounded up to a multiple of 256 tokens; ``ftp-sdpa``: as ftp trained before
  mask-free attention and flat adapters; ``ftp-sdpa-5-per-step``: that, with 5 examples per step;
  ``ftp-graphs``: every step replayed as a CUDA graph (eager layers, fused AdamW);
  ``ftp-graphs-no-dropout``: that with adapter dropout 0 (the recompute then keeps no random state).

Rounds (bench_rounds.py): ``--warmup`` rounds run every configuration once and are excluded; then
``--repeats`` rounds, the order rotated per round; every run in a process of its own (nothing one leaves
in GPU memory or compile caches counts for the next). The results file is rewritten after every run;
``--resume`` skips the runs already in it; ``--budget-s`` starts no run after that many seconds.
Reported per run: non-padding tokens per second over the steps after the 5th, peak GPU memory
(``torch.cuda.max_memory_allocated``), wall time and MFU = 4 x N x tokens/s / 989e12, N = matmul
parameters (frozen weights get no weight gradient; recomputation not counted). Summary per configuration:
median, min, max of tokens/s and peak GiB over the timed rounds; the fastest TRL configuration by median
and every configuration's median as a ratio of it. On a CPU, QLoRA becomes LoRA (4-bit weights need CUDA)
and configurations that need Liger or paged 8-bit AdamW are reported skipped; the ``tiny`` shape (a CPU
smoke test) packs rows of 256 tokens instead of 2,048. ``--profile`` adds a
torch.profiler summary of three steps to the ftp runs of round 0 only (timed rounds stay unprofiled).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import bench_rounds as rounds
from train_model import SEQ, SHAPES, device, effective_method, mfu, peak_gib, prepare, reset_peak
from train_trl import ALIASES, TRL_CONFIGS, missing_for, run_trl

PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes", "liger-kernel", "triton")
DEFAULT_CONFIGS = ["ftp", *TRL_CONFIGS]


class Ctx:
    """A minimal StepContext for calling ftp's trainer directly."""

    def __init__(self, folder: Path) -> None:
        from ftp.run.progress import QuietReporter

        self.events: list[dict[str, Any]] = []
        events = self.events

        class Recording(QuietReporter):
            def show(self, kind: str, data: dict[str, Any]) -> None:
                events.append({"event": kind, **data})

        self.run_id, self.run_dir, self.reporter = "bench", folder, Recording()
        self.backend_settings: dict[str, Any] = {"devices": device()}
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
            pack: bool = True, seq: int = 2048, cuda_graphs: bool | str = "auto", optimizer: str | None = None,
            dropout: float = 0.05, swaps: bool | str = "auto") -> dict[str, Any]:
    import torch

    from ftp.backends.local import training
    from ftp.backends.local.memory import plan_memory
    from ftp.config.settings import PipelineSettings
    from ftp.data.files import dataset_ref
    from ftp.types import TrainRequest
    from train_profile import compile_counters, phase_peaks, profile_summary, start_profile

    cuda, method = device() == "cuda", effective_method(method)
    compile_layers = compile_layers and cuda
    training.FLATTEN = flat
    pack_tokens = seq if pack else None
    per_step = {"pack_tokens": pack_tokens} if pack_tokens else {"batch_size": 5}
    settings = PipelineSettings(name="bench", data={"train": str(data)}, model={"base": str(model_dir),
                                "max_seq_length": seq, "chat_template": "chatml"},
                                train={"method": method, "max_steps": steps, **per_step,
                                       "gradient_accumulation_steps": 1, "packing": True,
                                       "early_stopping": None, "warmup_ratio": 0.0,
                                       "invalid_examples": "drop", "gradient_checkpointing": True,
                                       "optimizer": optimizer, "lora": {"dropout": dropout}})
    backend = {"devices": device(), "compile": compile_layers, "pack_multiple": pack_multiple, "attention": attention,
               "cuda_graphs": cuda_graphs if cuda else False, "fused_adapters": swaps, "lean_mlp": swaps}
    request = TrainRequest(backend="local", base_model=str(model_dir), settings=settings.train, model=settings.model,
                           train=dataset_ref(data, "train"),
                           validation=None, output_dir=work / f"model-ftp-{compile_layers}", backend_settings=backend)
    plan = plan_memory(request)
    reset_peak()
    ctx = Ctx(work)
    ctx.backend_settings = backend
    prof, summary = (start_profile(ctx, steps, cuda) if profile and cuda else (None, {}))
    steady: list[float] = []
    phases = {"forward": 0.0, "backward_and_step": 0.0, "after_forward": 0.0}
    if prof is None and cuda:  # memory held between steps: weights, adapters, optimiser state
        ctx.on_step = lambda: steady.append(torch.cuda.memory_allocated() / 2**30)
        from ftp.backends.local import loss as loss_module  # the loop imports answer_loss from it at each step

        loss_module.answer_loss = phase_peaks(loss_module.answer_loss, phases)  # type: ignore[assignment]
    start = time.perf_counter()
    result, trained = training.train(request, ctx)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    if prof is not None:
        summary.update(profile_summary(prof, summary))
    rows = [r for r in ctx.rows if "tokens" in r]
    if len(rows) < 6:
        raise RuntimeError(f"only {len(rows)} steps ran: --steps must be at least 6 (5 are not timed)")
    # skip the first steps (compilation, kernel selection, allocator growth) and the profiled ones; a profiled
    # run of fewer than 12 steps is not timed (its record then has no tokens_per_s)
    first, end = min(5, len(rows) - 2), len(rows) - (6 if prof is not None else 1)
    warm, last = rows[first], rows[max(end, first)]
    elapsed = (last["tokens"] / last["tokens_per_s"]) - (warm["tokens"] / warm["tokens_per_s"])
    tps = (last["tokens"] - warm["tokens"]) / elapsed if end > first else None
    shape = f"packed to {pack_tokens} tokens/step" if pack_tokens else "5 packed/step"
    peak = max(peak_gib() or 0.0, phases["forward"], phases["backward_and_step"])
    out = {"trainer": f"ftp {method} ({shape}, {settings.train.resolved_optimizer()}, "
                      f"{'compiled layers' if compile_layers else 'eager'}, attention {attention}"
                      f"{', flat adapters' if flat else ''}"
                      f"{f', rows rounded up to {pack_multiple}' if pack_multiple else ''})",
           "optimizer": settings.train.resolved_optimizer(),
           "tokens_per_step": round((last["tokens"] - warm["tokens"]) / max(end - first, 1)),
           "wall_s": round(wall, 1), "peak_gib": round(peak, 2) if cuda else None,
           "predicted_gib": round(plan.total_gib, 2),
           "first_loss": round(rows[0]["train_loss"], 4), "final_loss": round(result.metrics["train_loss"], 4)}
    if tps is not None:
        out["tokens_per_s"] = round(tps)
    if steady:
        out["between_steps_gib"] = round(steady[-1], 2)
        out["peak_gib_by_phase"] = {k: round(v, 2) for k, v in phases.items()}
    said = [e for e in ctx.events if e["event"] in ("cuda_graphs", "warning", "attention", "fused_adapters",
                                                     "lean_mlp")]
    if said:  # whether the steps replayed as graphs, or why not
        out["events"] = [f"{e['event']}: {e.get('message', '')}" for e in said]
    if summary:
        out["profile"] = summary
    elif compile_layers:  # whether the layers really ran compiled (a compiler failure falls back to eager)
        out["compile"] = compile_counters()
    del trained
    reset_peak()
    return out


FTP_CONFIGS: dict[str, dict[str, Any]] = {
    "ftp": dict(compile_layers=True),
    "ftp-eager": dict(compile_layers=False),
    # what ftp did before mask-free attention and flat adapters (the earlier results' "ftp")
    "ftp-sdpa": dict(compile_layers=True, attention="sdpa", flat=False),
    "ftp-sdpa-5-per-step": dict(compile_layers=True, attention="sdpa", flat=False, pack=False),
    "ftp-no-flat": dict(compile_layers=True, flat=False),
    "ftp-rounded": dict(compile_layers=True, pack_multiple=256),
    # every step replayed as one CUDA graph (backends.local.cuda_graphs): eager layers, fused AdamW (the paged
    # 8-bit optimiser's step takes its step count and learning rate from the host, which a graph would freeze)
    "ftp-graphs": dict(compile_layers=False, cuda_graphs=True, optimizer="adamw"),
    "ftp-graphs-no-dropout": dict(compile_layers=False, cuda_graphs=True, optimizer="adamw", dropout=0.0),
    # QLoRA's default optimiser, paged 8-bit AdamW, stepping eagerly after each replayed forward and backward
    "ftp-graphs-paged8": dict(compile_layers=False, cuda_graphs=True),
    # the same with PEFT's LoRA forward and transformers' MLP (backends.local.fused_adapters / lean_mlp: false),
    # ftp-graphs-paged8 as measured before those two
    "ftp-graphs-paged8-peft": dict(compile_layers=False, cuda_graphs=True, swaps=False),
}


def run_single(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One configuration, in this process (the child the parent starts per run)."""
    model_dir, data = prepare(args.shape, args.work)
    if name in TRL_CONFIGS:
        out = run_trl(model_dir, data, args.work, args.steps, args.method, TRL_CONFIGS[name], SEQ[args.shape])
    else:
        out = run_ftp(model_dir, data, args.work, args.steps, args.method, profile=args.profile, seq=SEQ[args.shape],
                      **FTP_CONFIGS[name])
    import torch

    return {**out, "gpu": torch.cuda.get_device_name() if device() == "cuda" else "cpu"}


def resolve_configs(text: str) -> list[str]:
    names = [ALIASES.get(n.strip(), n.strip()) for n in text.split(",") if n.strip()]
    known = [*FTP_CONFIGS, *TRL_CONFIGS]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        rounds.user_error(f"--configs: unknown {unknown or 'none given'}; known: {', '.join(known + list(ALIASES))}")
    return list(dict.fromkeys(names))


def summarise(runs: list[dict[str, Any]], skipped: dict[str, str]) -> dict[str, Any]:
    """Per configuration: stats of tokens/s, peak GiB and MFU; the fastest TRL median, and each
    configuration's median tokens/s as a ratio of it (above 1: faster than TRL at its fastest)."""
    per = rounds.summarise(runs, ["tokens_per_s", "peak_gib", "mfu", "process_wall_s"])
    trl = {c: s["tokens_per_s"]["median"] for c, s in per.items() if c in TRL_CONFIGS and s["tokens_per_s"]}
    fastest = max(trl, key=lambda c: trl[c]) if trl else None
    ratios = {c: round(s["tokens_per_s"]["median"] / trl[fastest], 3) for c, s in per.items()
              if fastest and s["tokens_per_s"]}
    return {"configs": per, "skipped": skipped, "fastest_trl": fastest,
            "fastest_trl_median_tokens_per_s": trl.get(fastest) if fastest else None, "vs_fastest_trl": ratios,
            "ftp_vs_fastest_trl": {c: r for c, r in ratios.items() if c in FTP_CONFIGS},
            "failed_runs": [r["key"] for r in runs if "error" in r],
            "by_machine": rounds.by_machine(runs, lambda rs: summarise(rs, skipped))}


def table(summary: dict[str, Any], header: str) -> str:
    rows = [header, "", "| configuration | timed runs | real tokens/s median [min-max] | spread | peak GiB median [min-max] "
            "| MFU | median / fastest TRL |", "|---|---|---|---|---|---|---|"]
    for name, s in summary["configs"].items():
        tps, peak, ratio = s["tokens_per_s"], s["peak_gib"], summary["vs_fastest_trl"].get(name)
        mark = " (fastest TRL)" if name == summary["fastest_trl"] else ""
        spread = f"{tps['spread']:.0%}" if tps and tps["spread"] is not None else "-"
        rows.append(f"| {name}{mark} | {tps['n'] if tps else 0} | {rounds.fmt(tps)} | {spread} | "
                    f"{rounds.fmt(peak, 2)} | {rounds.fmt(s['mfu'], 3)} | {'-' if ratio is None else f'{ratio:.2f}x'} |")
    rows += [f"| {name} | - | {reason} | | | | |" for name, reason in summary["skipped"].items()]
    for host, m in summary["by_machine"].items():
        rows.append(f"\nmachine {host}: fastest TRL {m['fastest_trl']} ({m['fastest_trl_median_tokens_per_s']} tokens/s); "
                    + ", ".join(f"{c} {r:.2f}x" for c, r in m["ftp_vs_fastest_trl"].items()))
    if summary["failed_runs"]:
        rows += ["", f"failed runs (in the results file, with their log tails): {', '.join(summary['failed_runs'])}"]
    return "\n".join(rows)


def child_command(args: argparse.Namespace, name: str, out: Path, profile: bool) -> list[str]:
    return [sys.executable, __file__, "--shape", args.shape, "--steps", str(args.steps), "--work", str(args.work),
            "--method", args.method, "--single", name, "--out", str(out)] + (["--profile"] if profile else [])


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="1b")
    p.add_argument("--steps", type=int, default=30, help="optimiser steps per run; the first 5 are not timed")
    p.add_argument("--work", type=Path, default=Path("/tmp/ftp-bench"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", choices=["lora", "qlora"], default="qlora")
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS))
    p.add_argument("--repeats", type=int, default=3, help="timed rounds")
    p.add_argument("--warmup", type=int, default=1, help="rounds run first and excluded from the summary")
    p.add_argument("--resume", action="store_true", help="keep the runs already in --out and do the rest")
    p.add_argument("--fresh", action="store_true", help="start over even if --out exists")
    p.add_argument("--retry-failed", action="store_true", help="with --resume: run failed runs again")
    p.add_argument("--budget-s", type=float, default=0, help="start no run after this many seconds (0: no limit)")
    p.add_argument("--run-timeout-s", type=float, default=900, help="a run still going after this is stopped")
    p.add_argument("--commit", default=None, help="the commit measured, where git is not available")
    p.add_argument("--profile", action="store_true", help="profile three steps of the ftp runs of round 0")
    p.add_argument("--single", help=argparse.SUPPRESS)  # one configuration, in a process of its own
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)  # build the model and data, then exit
    args = p.parse_args(argv)
    if args.steps < 6 or args.repeats < 0 or args.warmup < 0:
        rounds.user_error("--steps must be at least 6 (5 are not timed); --repeats and --warmup at least 0")
    args.work = args.work.resolve()
    return args


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse(argv)
    if args.single or args.prepare:
        if args.prepare:
            model_dir, data = prepare(args.shape, args.work)
            args.out.write_text(json.dumps({"model": str(model_dir), "data": str(data)}))
            return
        args.out.write_text(json.dumps(run_single(args.single, args)))
        return
    configs = resolve_configs(args.configs)
    skipped = {c: reason for c in configs if c in TRL_CONFIGS and (reason := missing_for(TRL_CONFIGS[c]))}
    active = [c for c in configs if c not in skipped]
    method_used = effective_method(args.method)
    note = f"--method {args.method}: LoRA on this CPU (4-bit weights need CUDA)" if method_used != args.method else None
    identity = {"benchmark": "train_gpu", "shape": args.shape, "steps": args.steps, "method": args.method,
                "method_used": method_used, "device": device(), "configs": active}
    meta = {"lora": "r=16 alpha=32 dropout=0.05 all-linear", "dtype": "bf16" if device() == "cuda" else "float32",
            "gradient_checkpointing": True, "repeats": args.repeats, "warmup": args.warmup, "note": note,
            **rounds.provenance(args.commit, PACKAGES)}
    results = rounds.ResultsFile(args.out, identity, meta, args.resume, args.fresh)
    header = (f"{args.shape} shape, {method_used}, {args.steps} steps per run, {args.warmup} warm-up + "
              f"{args.repeats} timed round(s)" + (f"; {note}" if note else ""))
    print(header, flush=True)
    for name, reason in skipped.items():
        print(f"{name}: {reason}", flush=True)

    def write(complete: bool = False) -> None:
        s = summarise(results.runs, skipped)
        results.write(s, table(s, header), complete)

    todo = rounds.pending(rounds.plan(active, args.repeats, args.warmup), args.warmup, results, args.retry_failed)
    left: list[str] = []
    if todo:
        (args.work / "logs").mkdir(parents=True, exist_ok=True)
        rounds.use_this_checkout(args.work)
        made = rounds.run_process([sys.executable, __file__, "--shape", args.shape, "--work", str(args.work), "--prepare",
                                   "--out", str(args.work / "prepared.json")], args.work / "prepared.json",
                                  args.run_timeout_s, args.work / "logs" / "prepare.log")
        if "error" in made:  # a process of its own, so that the parent never holds GPU memory
            print(f"building the model and data failed ({made['error']}): {made['log_tail']}", file=sys.stderr)
            sys.exit(1)

        def run_one(round_: int, name: str) -> dict[str, Any]:
            out = args.work / f"result-{name}.json"
            r = rounds.run_process(child_command(args, name, out, args.profile and round_ == 0), out,
                                   args.run_timeout_s, args.work / "logs" / f"r{round_}-{name}.log")
            on_gpu = "tokens_per_s" in r and device() == "cuda"  # MFU against an H200's peak means nothing on a CPU
            return {**r, "mfu": mfu(args.shape, r["tokens_per_s"])} if on_gpu else r

        left = rounds.execute(todo, args.warmup, results, run_one, args.budget_s, started, write)
    s = summarise(results.runs, skipped)
    complete = not left
    results.write(s, table(s, header), complete)
    print(table(s, header))
    print(f"results: {args.out}")
    sys.exit(1 if s["failed_runs"] else 0 if complete else 3)


if __name__ == "__main__":
    main()
