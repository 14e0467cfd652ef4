"""Which examples each step takes, in which order, at what learning rate.

Pure functions of the data and the seed, so that a resumed run (checkpoint.py) recomputes exactly the
order and schedule of the attempt it continues.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from .chat import Encoded


def examples_to_take(rows: Sequence[Encoded], order: list[int], cursor: int, batch: int, budget: int | None) -> int:
    """How many examples from ``cursor`` make the next micro-batch: ``batch``, or as many as fit in
    ``budget`` tokens (``train.pack_tokens``; never fewer than one, never past the epoch)."""
    if not budget:
        return batch
    used, take = 0, 0
    while cursor + take < len(order):
        n = len(rows[order[cursor + take]].input_ids)
        if take and used + n > budget:
            break
        used, take = used + n, take + 1
    return max(1, take)


def micro_batches_per_epoch(rows: Sequence[Encoded], seed: int, batch: int, budget: int | None) -> int:
    """Micro-batches in one pass over the data; with a token budget, counted on the first epoch's order."""
    if not budget:
        return math.ceil(len(rows) / batch)
    order, cursor, count = epoch_order(len(rows), seed, 0), 0, 0
    while cursor < len(order):
        cursor += examples_to_take(rows, order, cursor, batch, budget)
        count += 1
    return count


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of the examples in one epoch: the same on a resume as in the first attempt."""
    order = list(range(n))
    random.Random(seed + epoch).shuffle(order)
    return order


def lr_at(step: int, total: int, warmup: int, peak: float, kind: str) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    if kind == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return peak * max(0.0, 1 - progress)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
