"""``retrain_when:`` judged against a deployment's summary: each rule fires or not, with its value,
threshold and windows; any rule firing starts a retrain unless one started within the cooldown. Every
decision, fired or not, goes to the monitor's audit log (``ftp.monitor.decisions``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from ftp.config.monitor_settings import RetrainSettings, seconds
from ftp.monitor.feedback import Label
from ftp.monitor.quality import accuracy
from ftp.monitor.windows import parse


@dataclass(frozen=True)
class RuleResult:
    rule: str
    fired: bool
    message: str
    value: Any = None
    threshold: Any = None
    windows: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Facts:
    """What the rules read besides the summary: the live version, the champion's evaluation accuracy,
    the labelled examples collected since the live version, its base model's retirement date."""

    live: Any  # ModelVersion or None
    champion_accuracy: float | None
    new_examples: int
    retirement: date | None
    today: date
    now: datetime


def _recent_windows(summary: dict[str, Any], count: int) -> list[str]:
    return summary["windows"][-count:] if len(summary["windows"]) >= count else []


def quality(rule: Any, labels: Sequence[Label], facts: Facts) -> RuleResult:
    live = facts.live.version if facts.live else None
    got = accuracy([x for x in labels if x.request["model_version"] == live])
    n, value = got["n"], got["value"]
    if value is None or n < rule.min_samples:
        return RuleResult("quality", False, f"quality: {n} labelled answers of v{live}, fewer than min_samples "
                                            f"{rule.min_samples}", value, rule.below)
    if rule.below is not None and value < rule.below:
        return RuleResult("quality", True, f"quality: accuracy {value:.3f} (95% CI {got['low']:.3f}-{got['high']:.3f}) "
                                           f"on {n} labelled answers of v{live} is below {rule.below:g}", value, rule.below)
    champion = facts.champion_accuracy
    if rule.below_champion_by is not None and champion is not None and champion - value > rule.below_champion_by:
        return RuleResult("quality", True, f"quality: accuracy {value:.3f} on {n} labelled answers is "
                                           f"{champion - value:.3f} below the champion's evaluated {champion:.3f}",
                          value, rule.below_champion_by)
    return RuleResult("quality", False, f"quality: accuracy {value:.3f} on {n} labelled answers of v{live}", value,
                      rule.below)


def drifted(rule: Any, summary: dict[str, Any]) -> RuleResult:
    """Fires when each of the last ``consecutive_windows`` windows has ``any_of`` watched features drifting."""
    windows = _recent_windows(summary, rule.consecutive_windows)
    per_window = []
    for window in windows:
        found = {d["feature"] for d in summary["drift"]["results"] if d["window"] == window and d["verdict"] == "drift"
                 and (rule.features is None or d["feature"] in rule.features)}
        per_window.append(sorted(found))
    fired = bool(windows) and all(len(f) >= rule.any_of for f in per_window)
    shown = "; ".join(f"{w[11:16]} {', '.join(f) or 'none'}" for w, f in zip(windows, per_window))
    return RuleResult("drift", fired, f"drift: features drifting in the last {rule.consecutive_windows} windows: "
                                      f"{shown or 'not enough windows yet'} (fires at {rule.any_of} in each)",
                      [len(f) for f in per_window], rule.any_of, windows)


def latency(rule: Any, summary: dict[str, Any], live: int | None) -> RuleResult:
    windows = _recent_windows(summary, rule.consecutive_windows)
    p95s = []
    for window in windows:
        rows = [r for r in summary["service"] if r["window"] == window and r["version"] == live and not r["mirrored"]
                and r["requests"] >= rule.min_samples and r["latency_ms"]]
        p95s.append(max((r["latency_ms"]["p95"] for r in rows), default=None))
    fired = bool(windows) and all(p is not None and p > rule.p95_ms for p in p95s)
    return RuleResult("latency", fired, f"latency: p95 of v{live} in the last {len(windows)} windows "
                                        f"{[p for p in p95s]} ms, threshold {rule.p95_ms:g} ms", p95s, rule.p95_ms, windows)


def evaluate(settings: RetrainSettings, summary: dict[str, Any], labels: Sequence[Label], facts: Facts) -> list[RuleResult]:
    live = facts.live.version if facts.live else None
    out = []
    rules = settings.rules()
    if "quality" in rules:
        out.append(quality(settings.quality, labels, facts))
    if "drift" in rules:
        out.append(drifted(settings.drift, summary))
    if settings.new_data is not None:
        need = settings.new_data.min_examples
        out.append(RuleResult("new_data", facts.new_examples >= need, f"new_data: {facts.new_examples} labelled "
                              f"examples since v{live} (fires at {need})", facts.new_examples, need))
    if settings.schedule is not None and facts.live is not None:
        age = (facts.now - parse(facts.live.created_at)).total_seconds() / 86400
        out.append(RuleResult("schedule", age > settings.schedule.max_days, f"schedule: v{live} is {age:.1f} days old "
                              f"(fires after {settings.schedule.max_days:g})", round(age, 3), settings.schedule.max_days))
    if settings.latency is not None:
        out.append(latency(settings.latency, summary, live))
    if settings.base_retirement is not None:
        out.append(retirement(settings.base_retirement, facts))
    return out


def retirement(rule: Any, facts: Facts) -> RuleResult:
    base = facts.live.base_model if facts.live else "?"
    if facts.retirement is None:
        return RuleResult("base_retirement", False, f"base_retirement: no published retirement date for {base}")
    left = (facts.retirement - facts.today).days
    return RuleResult("base_retirement", left <= rule.within_days,
                      f"base_retirement: {base} can be fine-tuned until {facts.retirement.isoformat()}, "
                      f"{left} days away (fires within {rule.within_days})", left, rule.within_days)


def cooldown_until(settings: RetrainSettings, earlier: Sequence[dict[str, Any]]) -> datetime | None:
    """When the cooldown after the latest retrain that ran ends (None: none ran)."""
    ran = [d for d in earlier if d["kind"] == "retrain" and d["fired"] and d["action"] != "none"]
    if not ran:
        return None
    return parse(ran[-1]["at"]) + timedelta(seconds=seconds(settings.cooldown))


def decide(settings: RetrainSettings, results: list[RuleResult], earlier: Sequence[dict[str, Any]],
           now: datetime) -> dict[str, Any]:
    """The decision record: fired (a rule fired and no cooldown holds it), the rules, the reasons."""
    fired = [r for r in results if r.fired]
    until = cooldown_until(settings, earlier)
    held = bool(fired) and until is not None and now < until
    reasons = [r.message for r in fired] or ["no rule fired"]
    if held:
        assert until is not None
        reasons.append(f"cooldown: the last retrain started less than {settings.cooldown} ago; "
                       f"nothing before {until.isoformat(timespec='seconds')}")
    if not settings.rules():
        reasons = ["retrain_when: has no rules"]
    return {"fired": bool(fired) and not held, "held_by_cooldown": held, "reasons": reasons,
            "rules": [asdict(r) for r in results]}
