"""Service signals from the request log: requests, errors, latency and time-to-first-token percentiles,
tokens, per window and slot-version (mirrored answers apart). Percentiles are exact, from every row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from ftp.monitor.windows import Period

Key = tuple[str | None, int | None, bool]  # slot, version, mirrored


def percentiles(values: Sequence[float]) -> dict[str, float] | None:
    """p50 / p95 / p99 by linear interpolation between the sorted values (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> float:
        rank = q * (len(ordered) - 1)
        low = int(rank)
        high = min(low + 1, len(ordered) - 1)
        return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), 3)

    return {"p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def is_error(row: dict[str, Any]) -> bool:
    """A server error (5xx); a refused request (4xx) is the client's and counts apart."""
    return int(row["status"]) >= 500


def stats(rows: Sequence[dict[str, Any]], seconds: float) -> dict[str, Any]:
    errors = sum(1 for r in rows if is_error(r))
    answered = [r for r in rows if r["status"] == 200]
    completion = sum(r["completion_tokens"] or 0 for r in answered)
    return {"requests": len(rows), "errors": errors, "rejected": sum(1 for r in rows if 400 <= r["status"] < 500),
            "error_rate": round(errors / len(rows), 6) if rows else None,
            "latency_ms": percentiles([r["latency_ms"] for r in answered]),
            "ttft_ms": percentiles([r["ttft_ms"] for r in answered if r["ttft_ms"] is not None]),
            "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in answered), "completion_tokens": completion,
            "tokens_per_s": round(completion / seconds, 3) if seconds > 0 and answered else None}


def key_of(row: dict[str, Any]) -> Key:
    return row["slot"], row["model_version"], bool(row["mirrored"])


def service_rows(rows: Iterable[dict[str, Any]], period: Period) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per window and slot-version, per slot-version over the period)."""
    labels = period.labels()
    by_window: dict[tuple[int, Key], list[dict[str, Any]]] = defaultdict(list)
    by_key: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        index = period.index(row["ts"])
        if index is None:
            continue
        by_window[(index, key_of(row))].append(row)
        by_key[key_of(row)].append(row)
    total_s = (period.until - period.since).total_seconds()
    windowed = [{"window": labels[i], "slot": k[0], "version": k[1], "mirrored": k[2],
                 **stats(group, min(period.window_s, total_s))}
                for (i, k), group in sorted(by_window.items(), key=lambda item: (item[0][0], str(item[0][1])))]
    totals = [{"window": None, "slot": k[0], "version": k[1], "mirrored": k[2], **stats(group, total_s)}
              for k, group in sorted(by_key.items(), key=lambda item: str(item[0]))]
    return windowed, totals
