"""Quality from labelled feedback: accuracy per slot-version and window with a Wilson interval, and the
two slots of a rollout compared (difference of proportions, Newcombe's interval from two Wilsons)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ftp.monitor.feedback import Label
from ftp.monitor.windows import Period

Z95 = 1.959964


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sane at 0 and 1 and for small n, unlike p ± z·se."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def difference(new_ok: int, new_n: int, old_ok: int, old_n: int) -> tuple[float, float, float]:
    """new - old proportion with Newcombe's hybrid score interval (method 10)."""
    p1, p2 = new_ok / new_n, old_ok / old_n
    l1, u1 = wilson(new_ok, new_n)
    l2, u2 = wilson(old_ok, old_n)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, low, high


def accuracy(labels: Sequence[Label]) -> dict[str, Any]:
    judged = [label.correct for label in labels if label.correct is not None]
    n, ok = len(judged), sum(1 for c in judged if c)
    low, high = wilson(ok, n) if n else (None, None)
    return {"metric": "accuracy", "n": n, "correct": ok, "value": round(ok / n, 6) if n else None,
            "low": None if low is None else round(low, 6), "high": None if high is None else round(high, 6)}


def quality_rows(labels: Sequence[Label], period: Period) -> list[dict[str, Any]]:
    """Per window and slot-version, then per slot-version over the period (``window`` None); by the time
    of the request, not of the feedback."""
    names = period.labels()
    groups: dict[tuple[int | None, str | None, int | None], list[Label]] = defaultdict(list)
    for label in labels:
        index = period.index(label.request["ts"])
        if index is None:
            continue
        slot, version = label.request["slot"], label.request["model_version"]
        groups[(index, slot, version)].append(label)
        groups[(None, slot, version)].append(label)
    out = []
    for (index, slot, version), group in sorted(groups.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0,
                                                                              str(kv[0][1]))):
        out.append({"window": None if index is None else names[index], "slot": slot, "version": version,
                    **accuracy(group)})
    return out
