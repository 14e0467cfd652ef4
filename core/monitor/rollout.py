"""A rollout judged and, with ``deploy.auto_rollback``, undone: the new slot's error rate, p95 latency
and labelled accuracy against the old slot's, on the requests since ``auto_rollback.since``. A signal is
*worse* only with ``min_samples`` requests (labelled answers, for accuracy) in each slot and the
difference beyond its threshold; error rate and accuracy must also be significant (the 95% interval of
the difference excludes 0), so a few unlucky requests do not roll a good version back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ftp.config.monitor_settings import AutoRollbackSettings
from ftp.deploy.slots import State
from ftp.monitor.feedback import Label
from ftp.monitor.quality import accuracy, difference
from ftp.monitor.service import is_error, percentiles


def rollout_of(state: State) -> tuple[tuple[str, int], tuple[str, int]] | None:
    """((old slot, version), (new slot, version)) while the newer version takes some but not all of the
    traffic; None otherwise (one slot, promoted, rolled back, or only mirrored)."""
    if len(state.slots) != 2:
        return None
    new = max(state.slots, key=lambda s: state.slots[s][0])
    old = next(s for s in state.slots if s != new)
    if not 0 < state.slots[new][1] < 100:
        return None
    return (old, state.slots[old][0]), (new, state.slots[new][0])


def _signal(name: str, old: float | None, new: float | None, n_old: int, n_new: int, threshold: float | None,
            enough: bool, worse: bool, low: float | None = None, high: float | None = None) -> dict[str, Any]:
    verdict = "insufficient_data" if not enough or old is None or new is None else "worse" if worse else "ok"
    diff = None if old is None or new is None else round(new - old, 6)
    return {"signal": name, "old": old, "new": new, "n_old": n_old, "n_new": n_new, "difference": diff,
            "low": low, "high": high, "threshold": threshold, "verdict": verdict}


def compare(state: State, rows: Sequence[dict[str, Any]], labels: Sequence[Label],
            settings: AutoRollbackSettings) -> dict[str, Any] | None:
    """The rollout section of the summary: both slots and one entry per signal."""
    slots = rollout_of(state)
    if slots is None:
        return None
    (old_slot, old_v), (new_slot, new_v) = slots
    live = [r for r in rows if not r["mirrored"]]
    side = {s: [r for r in live if r["slot"] == s and r["model_version"] == v] for s, v in ((old_slot, old_v), (new_slot, new_v))}
    o, n = side[old_slot], side[new_slot]
    enough = len(o) >= settings.min_samples and len(n) >= settings.min_samples
    signals = []
    oe, ne = sum(map(is_error, o)), sum(map(is_error, n))
    if o and n:
        d, low, high = difference(ne, len(n), oe, len(o))
        worse = settings.error_rate_increase is not None and d > settings.error_rate_increase and low > 0
        signals.append(_signal("error_rate", round(oe / len(o), 6), round(ne / len(n), 6), len(o), len(n),
                               settings.error_rate_increase, enough, worse, round(low, 6), round(high, 6)))
    p_old = percentiles([r["latency_ms"] for r in o if r["status"] == 200])
    p_new = percentiles([r["latency_ms"] for r in n if r["status"] == 200])
    if p_old and p_new:
        ratio = settings.latency_ratio
        worse = ratio is not None and p_new["p95"] > ratio * max(p_old["p95"], 1e-9)
        signals.append(_signal("p95_latency_ms", p_old["p95"], p_new["p95"], len(o), len(n), ratio, enough, worse))
    lo = accuracy([x for x in labels if x.request["slot"] == old_slot and x.request["model_version"] == old_v])
    ln = accuracy([x for x in labels if x.request["slot"] == new_slot and x.request["model_version"] == new_v])
    if lo["n"] and ln["n"]:
        d, low, high = difference(ln["correct"], ln["n"], lo["correct"], lo["n"])
        worse = settings.quality_drop is not None and -d > settings.quality_drop and high < 0
        signals.append(_signal("accuracy", lo["value"], ln["value"], lo["n"], ln["n"], settings.quality_drop,
                               lo["n"] >= settings.min_samples and ln["n"] >= settings.min_samples, worse,
                               round(low, 6), round(high, 6)))
    return {"old": {"slot": old_slot, "version": old_v}, "new": {"slot": new_slot, "version": new_v},
            "traffic": state.traffic(), "signals": signals}


def reasons(comparison: dict[str, Any] | None) -> list[str]:
    """One line per worse signal."""
    if not comparison:
        return []
    new, old = comparison["new"], comparison["old"]
    out = []
    for s in comparison["signals"]:
        if s["verdict"] != "worse":
            continue
        out.append(f"{s['signal']} {s['new']:.4g} in {new['slot']} v{new['version']} vs {s['old']:.4g} in "
                   f"{old['slot']} v{old['version']} (n {s['n_new']} / {s['n_old']}; threshold {s['threshold']:g})")
    return out


def roll_back(store: Path, name: str, comparison: dict[str, Any], why: list[str], apply: Any, log: Path) -> Any:
    """The new slot to 0% and the old to 100% (the slot stays, for a look), as an ``auto-rollback`` change
    in the deployment history with the reasons, and a decision in the monitor's audit log. A change made
    since the comparison (someone promoted meanwhile) is left alone."""
    from ftp.deploy import traffic
    from ftp.monitor import decisions

    new = comparison["new"]

    def compute(state: State, _entries: Any) -> Any:
        if rollout_of(state) is None or state.slots.get(new["slot"], (None, 0))[0] != new["version"]:
            raise Stale(f"{name}: the rollout changed since it was judged; nothing rolled back")
        return traffic.set_traffic(state, name, new=0)

    reason = "auto-rollback: " + "; ".join(why)
    try:
        outcome = traffic.change(store, name, "auto-rollback", compute, reason=reason, apply=apply)
    except Stale:
        return None
    decisions.record(log, name, "rollback", True, f"{new['slot']} v{new['version']} to 0%",
                     {"reasons": why, "comparison": comparison})
    return outcome


class Stale(Exception):
    """The deployment moved between judging and rolling back."""
