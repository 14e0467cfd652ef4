"""``ftp monitor``'s one summary of a deployment over a period: service signals, input and output drift
against the training data, quality from feedback, the rollout comparison, the ``monitor:`` checks and
the decisions taken. ``--json`` prints it, ``--report`` draws it (``ftp.monitor.report``), the triggers
read it (``ftp.monitor.triggers``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ftp.config.monitor_settings import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ftp.monitor import decisions, drift
from ftp.monitor.features import content, oov_share, words
from ftp.monitor.feedback import Label
from ftp.monitor.quality import quality_rows
from ftp.monitor.reference import Reference
from ftp.monitor.service import service_rows
from ftp.monitor.windows import Period
from ftp.serve.request_log import iso_utc, utc_now

NUMERIC, CATEGORICAL = NUMERIC_FEATURES, CATEGORICAL_FEATURES
# Jensen-Shannon distance's noise grows with the categories: with 20 labels 0.15 fired on 29-64% of windows
# drawn from the reference itself, the chi-squared test on 0.1-0.6% (tests/test_monitor_drift.py)
MAX_JS_CATEGORIES = 10
MIN_SERVICE = 20  # requests in a slot-version's window before its error rate or latency is checked


@dataclass
class Inputs:
    """What a summary is made of, read by the caller (the CLI, a test, the server's watcher)."""

    name: str
    period: Period
    requests: list[dict[str, Any]]  # this deployment's rows in the period
    labels: list[Label]
    reference: Reference | None
    rollout: dict[str, Any] | None
    settings: Any  # MonitorSettings
    log: Any = None  # the request log's path, for the decisions


def _values(rows: Sequence[dict[str, Any]], feature: str, ref: Reference) -> list[Any]:
    if feature == "prompt_oov":  # needs the prompt's text: only rows logged with serve.log_content
        return [oov_share([w for m in json.loads(r["prompt_text"]) for w in words(content(m))],
                          lambda w: ref.vocabulary[w] > 0) for r in rows if r.get("prompt_text")]
    if feature == "answer_chars":
        return [r["output_chars"] for r in rows if r["status"] == 200 and r["output_chars"] is not None]
    if feature == "answer_in_format":
        return ["yes" if r["answer_in_format"] else "no" for r in rows
                if r["status"] == 200 and r["answer_in_format"] is not None]
    if feature == "answer_label":
        return [r["answer_label"] for r in rows if r["status"] == 200 and r["answer_label"] is not None]
    if feature == "prompt_turns":
        return [str(r["prompt_turns"]) for r in rows if r["prompt_turns"] is not None]
    return [r[feature] for r in rows if r[feature] is not None]


def _reference_values(ref: Reference, feature: str) -> list[Any]:
    if feature == "answer_label":
        return list(ref.labels)
    if feature == "answer_in_format":
        if ref.in_format is None:
            return []
        k = round(ref.in_format * ref.examples)
        return ["yes"] * k + ["no"] * (ref.examples - k)
    if feature == "prompt_turns":
        return [str(int(v)) for v in ref.numeric.get("prompt_turns", [])]
    return list(ref.numeric.get(feature, []))


def drift_results(inputs: Inputs) -> list[dict[str, Any]]:
    """Every feature in every window against the reference (features the reference lacks are left out)."""
    ref, s = inputs.reference, inputs.settings
    if ref is None:
        return []
    live = [r for r in inputs.requests if not r["mirrored"]]
    labels = inputs.period.labels()
    windows: list[list[dict[str, Any]]] = [[] for _ in labels]
    for row in live:
        index = inputs.period.index(row["ts"])
        if index is not None:
            windows[index].append(row)
    out = []
    for feature in (*NUMERIC, *CATEGORICAL):
        if s.features is not None and feature not in s.features:
            continue
        reference = _reference_values(ref, feature)
        if not reference:
            continue
        for label, rows in zip(labels, windows):
            current = _values(rows, feature, ref)
            if feature in NUMERIC:
                result = drift.numeric_drift(feature, reference, current, method="psi", min_samples=s.min_samples,
                                             threshold=s.drift.population_stability_index, window=label)
            elif len(set(reference)) > MAX_JS_CATEGORIES:  # many labels: a fixed JS threshold fires on noise
                result = drift.categorical_drift(feature, reference, current, method="chi_square",
                                                 min_samples=s.min_samples, window=label)
            else:
                result = drift.categorical_drift(feature, reference, current, min_samples=s.min_samples,
                                                 threshold=s.drift.jensen_shannon_distance, window=label)
            out.append(result.as_json())
    return out


def _check(rule: str, value: float | None, threshold: float, crossed: bool, message: str) -> dict[str, Any]:
    return {"rule": rule, "value": value, "threshold": threshold, "crossed": crossed, "message": message}


def checks(summary: dict[str, Any], settings: Any) -> list[dict[str, Any]]:
    """``monitor:``'s thresholds on the latest window (accuracy: on the whole period's labels)."""
    last = summary["windows"][-1] if summary["windows"] else None
    out = []
    for row in summary["service"]:
        if row["window"] != last or row["mirrored"] or row["requests"] < MIN_SERVICE:
            continue
        where = f"{row['slot'] or 'base'} v{row['version']}"
        if settings.error_rate is not None and row["error_rate"] is not None:
            out.append(_check("error_rate", row["error_rate"], settings.error_rate, row["error_rate"] > settings.error_rate,
                              f"error rate {row['error_rate']:.1%} in {where} (last window, {row['requests']} requests), "
                              f"monitor.error_rate {settings.error_rate:.1%}"))
        for rule, field in (("p95_latency_ms", "latency_ms"), ("p95_ttft_ms", "ttft_ms")):
            limit = getattr(settings, rule)
            if limit is not None and row[field]:
                p95 = row[field]["p95"]
                out.append(_check(rule, p95, limit, p95 > limit,
                                  f"p95 {field.split('_')[0]} {p95:.0f} ms in {where} (last window), monitor.{rule} {limit:g}"))
    if settings.accuracy is not None:
        for q in summary["quality"]:
            if q["window"] is None and q["n"] >= settings.min_labelled and q["value"] is not None:
                out.append(_check("accuracy", q["value"], settings.accuracy, q["value"] < settings.accuracy,
                                  f"accuracy {q['value']:.3f} on {q['n']} labelled answers of {q['slot']} v{q['version']}, "
                                  f"monitor.accuracy {settings.accuracy:g}"))
    if settings.max_drifted is not None and last is not None:
        drifted = sorted({d["feature"] for d in summary["drift"]["results"] if d["window"] == last and d["verdict"] == "drift"})
        judged = [d for d in summary["drift"]["results"] if d["window"] == last and d["verdict"] != "insufficient_data"]
        if judged:
            out.append(_check("drift", float(len(drifted)), float(settings.max_drifted), len(drifted) > settings.max_drifted,
                              f"{len(drifted)} features drifted in the last window"
                              + (f" ({', '.join(drifted)})" if drifted else "") + f", monitor.max_drifted {settings.max_drifted}"))
    return out


def build_summary(inputs: Inputs) -> dict[str, Any]:
    windowed, totals = service_rows(inputs.requests, inputs.period)
    ref = inputs.reference
    summary: dict[str, Any] = {
        "name": inputs.name, "generated_at": utc_now(), "since": iso_utc(inputs.period.since),
        "until": iso_utc(inputs.period.until), "window_s": inputs.period.window_s, "windows": inputs.period.labels(),
        "service": windowed, "totals": totals,
        "drift": {"reference": ref.as_json() if ref else None,
                  "features": {**{f: "numeric" for f in NUMERIC}, **{f: "categorical" for f in CATEGORICAL}},
                  "results": drift_results(inputs)},
        "quality": quality_rows(inputs.labels, inputs.period),
        "rollout": inputs.rollout,
    }
    summary["checks"] = checks(summary, inputs.settings)
    summary["decisions"] = decisions.read(inputs.log, inputs.name) if inputs.log else []
    return summary


def crossed(summary: dict[str, Any]) -> list[str]:
    return [c["message"] for c in summary["checks"] if c["crossed"]]
