"""ServeMetrics: the exposition parses with prometheus_client's own parser, and the counts, labels,
buckets and in-flight gauge are what the observed requests say."""

from __future__ import annotations

from typing import Any

import pytest

from ftp.serve.metrics import LATENCY_BUCKETS, OTHER, ServeMetrics
from ftp.serve.request_log import RequestRecord


def rec(slot: str | None = "blue", version: int | None = 1, status: int = 200, **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = dict(request_id="c", model="triage", endpoint="triage", slot=slot, model_version=version,
                                  status=status, latency_ms=30.0, prompt_tokens=10, completion_tokens=4)
    fields.update(kw)
    return RequestRecord(**fields)


def parsed(metrics: ServeMetrics) -> dict[str, Any]:
    """{family name: family} from the rendered text, parsed as Prometheus would."""
    from prometheus_client.parser import text_string_to_metric_families

    body, content_type = metrics.render()
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    return {f.name: f for f in text_string_to_metric_families(body.decode("utf-8"))}


def value(family: Any, sample: str, **labels: str) -> float:
    found = [s.value for s in family.samples if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (sample, labels, family.samples)
    return float(found[0])


def test_counts_labels_and_histograms() -> None:
    m = ServeMetrics()
    for _ in range(3):
        m.observe(rec(ttft_ms=8.0))
    m.observe(rec("green", 2, latency_ms=2500.0, ttft_ms=400.0, completion_tokens=16))
    m.observe(rec("green", 2, status=503, error_type="server_error", latency_ms=2.0, prompt_tokens=None,
                  completion_tokens=None))
    m.observe(rec(slot=None, version=None, endpoint=None, model="nope", status=404, error_type="invalid_request_error",
                  latency_ms=1.0, prompt_tokens=None, completion_tokens=None))
    m.observe(rec("green", 2, mirrored=True, latency_ms=40.0))  # a shadow answer counts under its own slot
    families = parsed(m)

    requests = families["ftp_requests"]
    assert requests.type == "counter"
    assert value(requests, "ftp_requests_total", model="triage", slot="blue", version="1", status="200") == 3
    assert value(requests, "ftp_requests_total", model="triage", slot="green", version="2", status="200") == 2
    assert value(requests, "ftp_requests_total", model="triage", slot="green", version="2", status="503") == 1
    assert value(requests, "ftp_requests_total", model="nope", slot="", version="", status="404") == 1
    assert sum(s.value for s in requests.samples if s.name == "ftp_requests_total") == 7

    errors = families["ftp_request_errors"]
    assert value(errors, "ftp_request_errors_total", slot="green", error_type="server_error") == 1
    assert value(errors, "ftp_request_errors_total", model="nope", error_type="invalid_request_error") == 1
    assert sum(s.value for s in errors.samples if s.name == "ftp_request_errors_total") == 2

    duration = families["ftp_request_duration_seconds"]
    assert duration.type == "histogram"
    green = dict(model="triage", slot="green", version="2")
    assert value(duration, "ftp_request_duration_seconds_count", **green) == 3
    assert value(duration, "ftp_request_duration_seconds_sum", **green) == pytest.approx(2.5 + 0.002 + 0.04)
    assert value(duration, "ftp_request_duration_seconds_bucket", **green, le="0.005") == 1
    assert value(duration, "ftp_request_duration_seconds_bucket", **green, le="1.0") == 2
    assert value(duration, "ftp_request_duration_seconds_bucket", **green, le="2.5") == 3
    bounds = sorted({float(s.labels["le"]) for s in duration.samples if s.name.endswith("_bucket")})
    assert bounds == [*LATENCY_BUCKETS, float("inf")] and bounds[0] == 0.005 and bounds[-2] == 120

    ttft = families["ftp_time_to_first_token_seconds"]
    assert value(ttft, "ftp_time_to_first_token_seconds_count", slot="blue") == 3
    assert value(ttft, "ftp_time_to_first_token_seconds_sum", slot="blue") == pytest.approx(0.024)
    assert value(ttft, "ftp_time_to_first_token_seconds_count", slot="green") == 1  # only records with a TTFT

    tokens = families["ftp_tokens"]
    assert value(tokens, "ftp_tokens_total", slot="blue", kind="prompt") == 30
    assert value(tokens, "ftp_tokens_total", slot="blue", kind="completion") == 12
    assert value(tokens, "ftp_tokens_total", slot="green", kind="completion") == 20  # 16 + the mirrored 4


def test_in_flight_gauge() -> None:
    m = ServeMetrics()
    for _ in range(3):
        m.started()
    m.finished()
    gauge = parsed(m)["ftp_requests_in_flight"]
    assert gauge.type == "gauge" and value(gauge, "ftp_requests_in_flight") == 2


def test_each_instance_has_its_own_registry() -> None:
    """Many apps in one process (tests do this): no 'Duplicated timeseries' error, no shared counts."""
    first, second = ServeMetrics(), ServeMetrics()
    first.observe(rec())
    assert value(parsed(first)["ftp_requests"], "ftp_requests_total", slot="blue") == 1
    assert not [s for s in parsed(second)["ftp_requests"].samples if s.name == "ftp_requests_total"]
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("ftp_requests_total", {"model": "triage", "slot": "blue", "version": "1",
                                                            "status": "200"}) is None


def test_made_up_model_names_cannot_grow_the_series() -> None:
    m = ServeMetrics(max_label_values=5)
    for i in range(50):
        m.observe(rec(slot=None, version=None, endpoint=None, model=f"garbage-{i}", status=404))
    models = {s.labels["model"] for s in parsed(m)["ftp_requests"].samples if s.name == "ftp_requests_total"}
    assert len(models) == 6 and OTHER in models
    assert value(parsed(m)["ftp_requests"], "ftp_requests_total", model=OTHER) == 45


def test_openmetrics_when_the_scraper_asks() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    m = ServeMetrics()
    m.observe(rec())
    body, content_type = m.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    names = {f.name for f in text_string_to_metric_families(body.decode("utf-8"))}
    assert {"ftp_requests", "ftp_request_duration_seconds", "ftp_requests_in_flight"} <= names
