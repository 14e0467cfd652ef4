"""The same pipeline on 1 and 2 GPUs through ``ftp run`` (torchrun + DDP for 2): tokens/s and loss.

    python benchmarks/train_ddp.py --shape 1b --steps 30 --out results.json

Builds the model and data as train_gpu.py does, writes a pipeline file, runs
``python -m ftp run ... --steps validate,split,train`` with ``backends.local.devices`` 1 and 2, and reads
each run's metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from train_model import build_model, make_data  # noqa: E402

PIPELINE = """name: ddp-bench
data: {{train: {data}, provenance: synthetic}}
model: {{base: {model}, max_seq_length: 2048, chat_template: chatml}}
train:
  method: lora
  max_steps: {steps}
  batch_size: {batch}
  gradient_accumulation_steps: 1
  early_stopping: null
  warmup_ratio: 0.0
  invalid_examples: drop
  gradient_checkpointing: true
  eval_steps: 1000
backends:
  local: {{devices: {devices}}}
"""


def run(work: Path, model: Path, data: Path, steps: int, devices: int, batch: int) -> dict:
    pipeline = work / f"pipeline-{devices}-{batch}.yaml"
    pipeline.write_text(PIPELINE.format(data=data, model=model, steps=steps, devices=devices, batch=batch))
    runs = work / f"runs-{devices}-{batch}"
    proc = subprocess.run([sys.executable, "-m", "ftp", "run", str(pipeline), "--quiet", "--steps",
                           "validate,split,train", "--runs-dir", str(runs)], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"devices": devices, "error": proc.stderr[-1500:]}
    metrics = next(runs.glob("*/*/metrics.jsonl"))
    rows = [r for r in map(json.loads, metrics.read_text().splitlines()) if "train_loss" in r]
    warm, last = rows[min(5, len(rows) - 1)], rows[-1]
    seconds = last["tokens"] / last["tokens_per_s"] - warm["tokens"] / warm["tokens_per_s"]
    return {"devices": devices, "examples_per_step": batch, "steps": len(rows), "tokens_per_s": round((last["tokens"] - warm["tokens"]) / seconds),
            "final_loss": round(last["train_loss"], 4), "losses": [round(r["train_loss"], 4) for r in rows]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", default="1b")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ftp-ddp"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--batch", default="8", help="examples per optimiser step; several: 8,32")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    model = build_model(args.shape, args.work / args.shape)
    from transformers import AutoTokenizer

    data = args.work / "data.jsonl"
    make_data(data, 4000, AutoTokenizer.from_pretrained(model))
    results = []
    for batch in args.batch.split(","):
        for devices in (1, 2):
            results.append(run(args.work, model, data, args.steps, devices, int(batch)))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "losses"}), flush=True)
            args.out.write_text(json.dumps({"shape": args.shape, "results": results}, indent=2))  # a time-out keeps these


if __name__ == "__main__":
    main()
