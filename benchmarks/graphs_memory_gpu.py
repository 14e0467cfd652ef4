"""Where a CUDA-graphed training run reaches its peak GPU memory: the peak of each part of the run (the
eager first step, each graph's warm-up forward and backward, its capture, the replays), for the 8B QLoRA
shape of train_gpu.py's ``ftp-graphs`` configuration.

    cd benchmarks && python graphs_memory_gpu.py --shape 8b --work /tmp/tb/work --out /tmp/graphs_memory.json

The peak is ``torch.cuda.max_memory_allocated``, reset at the start of each part; ``held`` is what stays
allocated when the part ends. ``--trace`` also records the allocator's history from the first step on and
reports, for each step and each warm-up and capture, what was alive at its peak (memory_trace.py).
``--config`` may also name a TRL configuration, traced step by step, to compare what each keeps alive:

    python graphs_memory_gpu.py --shape 8b --steps 6 --config trl-packing-liger-paged8 --trace --out /tmp/trl.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import bench_rounds as rounds
from train_gpu import FTP_CONFIGS, run_ftp
from train_trl import TRL_CONFIGS, run_trl
from train_model import SEQ, prepare


def main() -> None:
    import torch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shape", default="8b")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--config", default="ftp-graphs", choices=[*(c for c in FTP_CONFIGS if "graphs" in c), *TRL_CONFIGS])
    p.add_argument("--work", type=Path, default=Path("/tmp/ftp-bench"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--trace", action="store_true", help="what is alive at each part's peak (memory_trace.py)")
    p.add_argument("--split-loss", action="store_true",
                   help="ftp's loss as log_softmax + nll_loss (what cross_entropy does inside), for a trace that "
                        "fails inside cross_entropy")
    args = p.parse_args()
    rounds.use_this_checkout(args.work)  # this checkout's ftp, installed or not
    from memory_trace import MemoryTrace

    from ftp.backends.local import graphs, loop
    from ftp.backends.local.loss import AnswerLoss

    if args.split_loss:
        AnswerLoss._chunk = split_chunk  # type: ignore[method-assign]

    trace = MemoryTrace() if args.trace else None

    parts: list[dict[str, Any]] = []

    def close(name: str) -> None:  # the part that ends here, then a fresh peak for the next one
        gib = 2**30
        parts.append({"part": name, "peak_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
                      "held_gib": round(torch.cuda.memory_allocated() / gib, 3)})
        torch.cuda.reset_peak_memory_stats()

    body, capture = graphs.StepGraphs._body, graphs.StepGraphs._capture

    def timed_body(self: Any, inputs: dict[str, Any], longest: int, update: bool = True) -> None:
        if not update:  # a capture's warm-up: what ran before it ends here
            close("before the graph's warm-up (loading, the eager first step)")
        if trace is not None:
            trace.mark("warm-up" if not update else "capture")
        body(self, inputs, longest, update)
        if not update:
            close("warm-up forward and backward")

    def timed_capture(self: Any, key: tuple[int, ...], b: Any) -> Any:
        entry = capture(self, key, b)
        close("capture")
        return entry

    step = loop.Loop.step

    def mark_step(number: int) -> None:
        if trace is not None:
            if not trace.labels:
                trace.start()
            trace.mark(f"step {number}")

    def traced_step(self: Any) -> None:
        mark_step(self.st.step + 1)
        step(self)

    if trace is not None:
        loop.Loop.step = traced_step  # type: ignore[method-assign]
    graphs.StepGraphs._body = timed_body  # type: ignore[method-assign]
    graphs.StepGraphs._capture = timed_capture  # type: ignore[method-assign]
    model_dir, data = prepare(args.shape, args.work)
    torch.cuda.reset_peak_memory_stats()
    if args.config in TRL_CONFIGS:
        out = run_trl(model_dir, data, args.work, args.steps, "qlora", TRL_CONFIGS[args.config], SEQ[args.shape],
                      on_step_begin=mark_step)
    else:
        out = run_ftp(model_dir, data, args.work, args.steps, "qlora", seq=SEQ[args.shape], **FTP_CONFIGS[args.config])
    close("replays and saving")
    result = {"config": args.config, "shape": args.shape, "steps": args.steps, "parts": parts,
              "run": {k: out.get(k) for k in ("peak_gib", "between_steps_gib", "peak_gib_by_phase", "events")},
              "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              **({"trace": trace.report()} if trace is not None else {})}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def split_chunk(self: Any, hidden: Any, targets: Any) -> Any:
    """AnswerLoss._chunk for a plain Llama (no scaling, capping or smoothing), cross-entropy in its two parts."""
    from torch import nn

    from ftp.backends.local.chat import IGNORE

    logits = self.head(hidden).float()
    return nn.functional.nll_loss(nn.functional.log_softmax(logits, dim=-1), targets, ignore_index=IGNORE,
                                  reduction="sum")


if __name__ == "__main__":
    main()
