"""The quickstart pipeline on a GPU, with LoRA and with QLoRA: wall time, tokens/s, memory, metrics.

    python benchmarks/quickstart_gpu.py --out results/quickstart_gpu.json

Runs ``ftp run examples/quickstart/pipeline.yaml --backend local`` exactly as a user would (the
embedded Gemma 3 270M, the quickstart's own settings), once per method, in a scratch copy of the
example, and records what the run itself wrote: train wall time and tokens/s, measured peak GPU
memory next to ``ftp plan``'s prediction, and the test split's metrics for base and fine-tuned model.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def ftp(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftp", *args], capture_output=True, text=True, env=env)


def run_method(method: str, work: Path, env: dict[str, str]) -> dict[str, Any]:
    pipeline = str(work / "pipeline.yaml")
    plan = ftp("plan", pipeline, "--json", "--set", f"train.method={method}", env=env)
    predicted = json.loads(plan.stdout).get("total_gib") if plan.returncode == 0 else None
    start = time.perf_counter()
    proc = ftp("run", pipeline, "--backend", "local", "--json", "--set", f"train.method={method}", env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"method": method, "error": (proc.stderr or proc.stdout)[-1500:]}
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    run_dir = Path(events[0]["run_dir"])
    train = json.loads((run_dir / "state.json").read_text())["steps"]["train"]["outputs"]
    report = json.loads((run_dir / "eval.json").read_text())["metrics"]
    return {"method": method, "run_wall_s": round(wall, 1), "train_wall_s": train["wall_seconds"],
            "train_tokens_per_s": round(train["metrics"]["train_tokens_per_s"]), "steps": train["steps"],
            "peak_gib": round(train["peak_memory_mb"] / 1024, 2), "predicted_gib": predicted,
            "base": report["base"], "fine_tuned": report["fine-tuned"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--methods", default="lora,qlora")
    args = parser.parse_args()
    import torch

    results = []
    for method in args.methods.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "quickstart"
            shutil.copytree(ROOT / "examples" / "quickstart", work, ignore=shutil.ignore_patterns("runs", ".ftp"))
            env = {**os.environ, "FTP_RUNS_DIR": str(Path(tmp) / "runs")}
            result = run_method(method, work, env)
        print(json.dumps(result), flush=True)
        results.append(result)
    payload = {"gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
               "torch": torch.__version__, "pipeline": "examples/quickstart/pipeline.yaml", "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
