"""Where ftp's training step spends its time and memory (benchmarks/train_gpu.py --profile, and the
per-phase peaks of every ftp run on a GPU): a torch.profiler summary of three late steps, and the peak
split into the forward pass and backward + optimiser step."""

from __future__ import annotations

import time
from typing import Any


def start_profile(ctx: Any, steps: int, on_cuda: bool) -> tuple[Any, dict[str, Any]]:
    """Profile three of the last steps (after compilation and warm-up), timing them on the host as well."""
    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
                   schedule=schedule(wait=steps - 5, warmup=1, active=3, repeat=1))
    marks: dict[str, Any] = {"times": [], "first": steps - 5}

    def step() -> None:
        if on_cuda:
            torch.cuda.synchronize()
        marks["times"].append(time.perf_counter())
        prof.step()

    prof.start()
    ctx.on_step = step
    return prof, marks


def profile_summary(prof: Any, marks: dict[str, Any]) -> dict[str, Any]:
    from torch.autograd import DeviceType

    prof.stop()
    times, first = marks.pop("times"), marks.pop("first")
    wall_us = (times[first + 3] - times[first]) * 1e6  # the three active steps, after the warm-up step
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA and not e.key.startswith("ProfilerStep")]
    busy = sum(e.self_device_time_total for e in kernels)
    top = sorted(kernels, key=lambda e: e.self_device_time_total, reverse=True)[:10]
    host = sorted((e for e in events if e.device_type == DeviceType.CPU and not e.key.startswith("ProfilerStep")),
                  key=lambda e: e.self_cpu_time_total, reverse=True)[:15]
    return {"gpu_busy_share": round(busy / wall_us, 3), "step_ms": round(wall_us / 3e3, 1),
            "gpu_kernel_ms_per_step": round(busy / 3e3, 1), "kernels_per_step": round(sum(e.count for e in kernels) / 3),
            "top_kernels": [{"name": e.key[:90], "ms_per_step": round(e.self_device_time_total / 3e3, 2),
                             "share_of_gpu_time": round(e.self_device_time_total / max(busy, 1), 3)} for e in top],
            "top_host_ops": [{"name": e.key[:90], "self_cpu_ms_per_step": round(e.self_cpu_time_total / 3e3, 2),
                              "calls_per_step": round(e.count / 3)} for e in host],
            "compile": compile_counters()}


def compile_counters() -> dict[str, Any]:
    """Graphs, graph breaks and recompilations: whether the compiled layers really run compiled."""
    from torch._dynamo.utils import counters

    return {k: {n: int(v) for n, v in list(counts.items())[:8]} for k, counts in counters.items()
            if k in ("stats", "graph_break", "recompiles", "unimplemented")}


def phase_peaks(answer_loss: Any, phases: dict[str, float]) -> Any:
    """Wrap the trainer's loss call to split the peak into forward and backward + optimiser step (the
    allocator's peak counter is reset around each forward; the overall peak is the largest of them)."""
    import torch

    gib = lambda: torch.cuda.max_memory_allocated() / 2**30  # noqa: E731

    def measured(model: Any, batch: Any) -> Any:
        phases["backward_and_step"] = max(phases["backward_and_step"], gib())
        torch.cuda.reset_peak_memory_stats()
        out = answer_loss(model, batch)
        phases["forward"] = max(phases["forward"], gib())
        phases["after_forward"] = max(phases["after_forward"], torch.cuda.memory_allocated() / 2**30)
        torch.cuda.reset_peak_memory_stats()
        return out

    return measured
