"""The same pipeline on 1 and 2 GPUs through ``ftp run``: DDP and FSDP, scaling at the same examples per
GPU, losses against a 1-GPU run of the same total batch, peak memory, and a kill-and-resume on 2 GPUs.

    NCCL_NVLS_ENABLE=0 python benchmarks/train_ddp.py --shape 8b --method lora --per-gpu 8 --steps 30 \\
        --repeats 3 --out results/train_ddp_8b_lora.json [--kill-resume]
    NCCL_NVLS_ENABLE=0 python benchmarks/train_ddp.py --shape 20b --method full --per-gpu 2 --configs 2-fsdp ...
    python benchmarks/train_ddp.py --shape tiny --cpu --steps 8 --repeats 1 --out /tmp/ddp.json   # CPU smoke test

Configurations (``--configs``), each ``ftp run ... --steps validate,split,train`` in a process of its own:
``1`` = one GPU, ``--per-gpu`` examples per step; ``1-double`` = one GPU with the 2-GPU runs' batch (the
losses they must equal); ``2-ddp`` / ``2-fsdp`` = two GPUs (``backends.local.devices: 2``), twice the
batch, so each GPU has the work of the 1-GPU run: their tokens/s over ``1``'s is the scaling the issue asks
for (>= 1.8x). Rounds as in bench_rounds.py: a warm-up round excluded, then ``--repeats`` rounds in rotated
order, results rewritten after every run. ``--kill-resume``: a 2-GPU DDP run SIGKILLed (the whole process
group) after its first checkpoint, resumed with ``ftp run --resume``, its losses compared with the
uninterrupted ``2-ddp`` run's. ``--cpu``: ``devices: cpu`` with ``processes`` for the GPUs (gloo).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_rounds import plan  # noqa: E402
from train_model import SEQ, prepare  # noqa: E402

PIPELINE = """name: ddp-bench
data: {{train: {data}, provenance: synthetic}}
model: {{base: {model}, max_seq_length: {seq}, chat_template: chatml}}
train:
  method: {method}
  max_steps: {steps}
  batch_size: {batch}
  gradient_accumulation_steps: 1
  early_stopping: null
  warmup_ratio: 0.0
  invalid_examples: drop
  gradient_checkpointing: true
  eval_steps: 1000
  checkpoint_steps: {checkpoint}
backends:
  local: {{{placement}, strategy: {strategy}, compile: false}}
"""
CONFIGS = {"1": (1, 1, "ddp"), "1-double": (1, 2, "ddp"), "2-ddp": (2, 2, "ddp"), "2-fsdp": (2, 2, "fsdp")}


def pipeline(args: argparse.Namespace, model: Path, data: Path, config: str, folder: Path) -> Path:
    devices, batch_factor, strategy = CONFIGS[config]
    placement = f"devices: cpu, processes: {devices}" if args.cpu else f"devices: {devices}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pipeline.yaml"
    path.write_text(PIPELINE.format(data=data, model=model, seq=SEQ.get(args.shape, 2048), method=args.method,
                                    steps=args.steps, batch=args.per_gpu * batch_factor, strategy=strategy,
                                    placement=placement, checkpoint=max(1, args.steps // 4)))
    return path


def ftp(pipe: Path, runs: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ftp", "run", str(pipe), "--quiet", "--steps", "validate,split,train",
                             "--runs-dir", str(runs), *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def measured(run_dir: Path) -> dict[str, Any]:
    """tokens/s after the first five steps, the losses and the peak memory rank 0 saw, from the run's files."""
    rows = [r for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "train_loss" in r]
    warm, last = rows[min(5, len(rows) - 1)], rows[-1]
    seconds = last["tokens"] / last["tokens_per_s"] - warm["tokens"] / warm["tokens_per_s"]
    outputs = json.loads((run_dir / "state.json").read_text())["steps"]["train"]["outputs"]
    return {"steps": len(rows), "tokens_per_s": round((last["tokens"] - warm["tokens"]) / max(seconds, 1e-9)),
            "peak_gib_rank0": round(outputs.get("peak_memory_mb", 0) / 1024, 2),
            "losses": [round(r["train_loss"], 5) for r in rows]}


def one_run(args: argparse.Namespace, model: Path, data: Path, config: str, key: str) -> dict[str, Any]:
    folder = args.work / key.replace("/", "-")
    proc = ftp(pipeline(args, model, data, config, folder), folder / "runs")
    _, err = proc.communicate()
    if proc.returncode != 0:
        return {"config": config, "error": err[-1500:]}
    return {"config": config, **measured(next((folder / "runs").glob("*/*/state.json")).parent)}


def kill_and_resume(args: argparse.Namespace, model: Path, data: Path) -> dict[str, Any]:
    """2-GPU DDP killed (process group, torchrun's workers die with it) after a checkpoint, then resumed."""
    folder = args.work / "kill-resume"
    runs = folder / "runs"
    proc = ftp(pipeline(args, model, data, "2-ddp", folder), runs)
    deadline, killed_at = time.time() + 1800, None
    while time.time() < deadline and proc.poll() is None:
        found = list(runs.glob("*/*/checkpoint/loop.json"))
        if found:
            killed_at = json.loads(found[0].read_text())["step"]
            break
        time.sleep(0.2)
    if killed_at is None:
        return {"error": "no checkpoint before the run ended"}
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = next(runs.glob("*/*/state.json")).parent
    resumed = ftp(folder / "pipeline.yaml", runs, "--resume", run_dir.name)
    _, err = resumed.communicate()
    if resumed.returncode != 0:
        return {"killed_at_step": killed_at, "error": err[-1500:]}
    return {"killed_at_step": killed_at, **measured(run_dir)}


def summary(runs: dict[str, dict[str, Any]], kill: dict[str, Any] | None) -> dict[str, Any]:
    good: dict[str, list[dict[str, Any]]] = {}
    for key, r in runs.items():
        if "error" not in r and not key.startswith("warmup"):
            good.setdefault(r["config"], []).append(r)
    out: dict[str, Any] = {}
    for config, rs in good.items():
        speeds = [r["tokens_per_s"] for r in rs]
        out[config] = {"tokens_per_s_median": statistics.median(speeds), "min": min(speeds), "max": max(speeds),
                       "n": len(rs), "peak_gib_rank0": max(r["peak_gib_rank0"] for r in rs)}
    if "1" in out:
        for config in ("2-ddp", "2-fsdp"):
            if config in out:
                out[config]["scaling_over_1"] = round(out[config]["tokens_per_s_median"] / out["1"]["tokens_per_s_median"], 3)
    reference = good.get("1-double", [{}])[0].get("losses")
    for config in ("2-ddp", "2-fsdp"):
        if reference and config in good:
            out[config]["max_loss_diff_vs_1_gpu_same_batch"] = max(abs(a - b) for a, b in zip(good[config][0]["losses"], reference))
    if kill and "losses" in kill and "2-ddp" in good:
        kill["max_loss_diff_vs_uninterrupted"] = max(abs(a - b) for a, b in zip(kill["losses"], good["2-ddp"][0]["losses"]))
        kill["every_step_once"] = kill["steps"] == good["2-ddp"][0]["steps"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="8b")
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--per-gpu", type=int, default=8, help="examples per optimiser step per GPU")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--kill-resume", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="devices: cpu with processes (gloo): a smoke test")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ftp-ddp"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"--configs: {', '.join(unknown)} unknown; choose from {', '.join(CONFIGS)}")
    model, data = prepare(args.shape, args.work)
    runs: dict[str, dict[str, Any]] = {}
    kill: dict[str, Any] | None = None

    def write() -> None:
        payload = {"shape": args.shape, "method": args.method, "per_gpu": args.per_gpu, "steps": args.steps,
                   "cpu": args.cpu, "runs": runs, "kill_resume": kill, "summary": summary(runs, kill)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2))  # after every run: a lease that ends keeps these

    for round_, config in plan(configs, args.repeats, args.warmup):
        key = f"{'warmup' if round_ < args.warmup else 'r'}{round_}/{config}"
        runs[key] = one_run(args, model, data, config, key)
        print(json.dumps({key: {k: v for k, v in runs[key].items() if k != "losses"}}), flush=True)
        write()
    if args.kill_resume:
        kill = kill_and_resume(args, model, data)
        print(json.dumps({"kill_resume": {k: v for k, v in kill.items() if k != "losses"}}), flush=True)
    write()
    print(json.dumps(summary(runs, kill), indent=2))


if __name__ == "__main__":
    main()
