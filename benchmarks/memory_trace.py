"""What holds a GPU's memory at the peak of each part of a run, from PyTorch's allocator trace.

``torch.cuda.max_memory_allocated`` says how high a part of a run went, not what was there. This records
the allocator's history (``torch.cuda.memory._record_memory_history``), drops a marker allocation of a
size no tensor has at each boundary between parts, and afterwards replays the trace: for each part, the
moment of its peak and the tensors alive then, summed by the line of code that allocated them (the
innermost frame outside torch itself). Allocations made before recording began (the weights) count as one
baseline.

    trace = MemoryTrace(); trace.start(); trace.mark("step 1"); ...; trace.mark("warm-up"); ...; trace.report()
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

MARK_UNIT = 512  # the allocator rounds sizes to 512 bytes: a marker's size is exact
MARK_BASE = 7_777  # marker k is (MARK_BASE + k) * MARK_UNIT bytes (about 4 MB)
TOP = 15


def site(frames: list[dict[str, Any]]) -> str:
    """Where an allocation was made: the innermost frames outside torch's own files (innermost first)."""
    ours = [f for f in frames if "/torch/" not in f.get("filename", "")]
    where = [f"{f['filename'].rsplit('/', 1)[-1]}:{f['line']} {f['name']}" for f in ours[:2]]
    inner = next((f["name"] for f in frames if "/torch/" in f.get("filename", "")), "")
    return " < ".join(where) + (f" [{inner}]" if inner else "")


@dataclass
class Part:
    label: str
    peak: int = 0  # bytes above the baseline
    peak_event: int = -1  # the index of the allocation that reached it
    live_at_peak: dict[int, tuple[int, list[dict[str, Any]]]] = field(default_factory=dict)  # addr: size, frames


def replay(events: list[dict[str, Any]], labels: list[str]) -> list[Part]:
    """Peak and live set per part. A part begins at each marker allocation; ``labels[k]`` names the
    part that marker ``k`` begins. Two passes: the first finds each part's peak event, the second takes
    the live set there (copying it at every new high would be quadratic in a trace's ramps)."""
    parts = [Part("before the first marker")]
    for i, total in _totals(events, labels, parts):
        if total > parts[-1].peak:
            parts[-1].peak, parts[-1].peak_event = total, i
    wanted = {part.peak_event: part for part in parts if part.peak_event >= 0}
    for _ in _totals(events, labels, [], wanted):
        pass
    return parts


def _totals(events: list[dict[str, Any]], labels: list[str], parts: list[Part],
            wanted: dict[int, Part] | None = None) -> Iterator[tuple[int, int]]:
    """Replay the allocations: yields (event index, bytes alive) after each allocation that is not a
    marker, appending a part to ``parts`` at each marker; at the indices in ``wanted`` it stores the
    live set in that part."""
    live: dict[int, tuple[int, list[dict[str, Any]]]] = {}
    total, begun = 0, 0
    for i, e in enumerate(events):
        action, size = e.get("action"), int(e.get("size", 0))
        if action == "alloc":
            k = size // MARK_UNIT - MARK_BASE
            if size % MARK_UNIT == 0 and 0 <= k < len(labels) and begun == k:
                begun += 1
                parts.append(Part(labels[k]))
                continue
            live[e["addr"]] = (size, e.get("frames", []))
            total += size
            if wanted and i in wanted:
                wanted[i].live_at_peak = dict(live)
            yield i, total
        elif action == "free_requested" and e["addr"] in live:
            total -= live.pop(e["addr"])[0]


def summary(part: Part, top: int = TOP) -> dict[str, Any]:
    by_site: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for size, frames in part.live_at_peak.values():
        where = site(frames)
        by_site[where][0] += size
        by_site[where][1] += 1
    rows = sorted(by_site.items(), key=lambda kv: -kv[1][0])[:top]
    mib = 2**20
    return {"part": part.label, "peak_above_baseline_mib": round(part.peak / mib, 1),
            "top": [{"mib": round(b / mib, 1), "tensors": n, "site": s} for s, (b, n) in rows]}


class MemoryTrace:
    """Record, mark, report (CUDA only)."""

    def __init__(self, max_entries: int = 3_000_000) -> None:
        self.max_entries = max_entries
        self.labels: list[str] = []
        self.baseline = 0

    def start(self) -> None:
        import torch

        self.baseline = torch.cuda.memory_allocated()
        # stacks for allocations only: with stacks on frees too, a chunk of ftp's loss recomputed in the
        # backward pass failed inside cross_entropy ("returned NULL without setting an exception")
        torch.cuda.memory._record_memory_history(context="alloc", stacks="python", max_entries=self.max_entries)

    def mark(self, begins: str) -> None:
        """Begin a part named ``begins``."""
        import torch

        k = len(self.labels)
        self.labels.append(begins)
        marker = torch.empty((MARK_BASE + k) * MARK_UNIT, dtype=torch.uint8, device="cuda")
        del marker

    def report(self) -> dict[str, Any]:
        import torch

        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        events = snapshot["device_traces"][torch.cuda.current_device()]
        parts = replay(events, self.labels)
        return {"baseline_mib": round(self.baseline / 2**20, 1), "events": len(events),
                "parts": [summary(p) for p in parts]}
