"""Prometheus metrics for ``ftp serve`` (``GET /metrics``), fed from the same records as the request log.

Each ``ServeMetrics`` has its own ``CollectorRegistry``, never prometheus_client's global one: tests
and embedding applications build many apps in one process, and the global registry refuses a second
metric of the same name. Names follow Prometheus' conventions: the ``ftp_`` prefix, base units in the
name (``_seconds``), ``_total`` on counters.

Label values are bounded: each label keeps at most ``MAX_LABEL_VALUES`` distinct values and files the
rest under ``other``, so a client sending made-up model names cannot grow the series without end.
"""

from __future__ import annotations

import threading

from ftp.serve.request_log import RequestRecord

# LLM requests run from a few milliseconds (a cached refusal, one token) to minutes (long answers).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
MAX_LABEL_VALUES = 64
OTHER = "other"


class BoundedLabels:
    """Label values as given until ``limit`` distinct ones were seen per label, then ``other``."""

    def __init__(self, limit: int = MAX_LABEL_VALUES) -> None:
        self.limit = limit
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, label: str, value: str) -> str:
        with self._lock:
            seen = self._seen.setdefault(label, set())
            if value in seen:
                return value
            if len(seen) >= self.limit:
                return OTHER
            seen.add(value)
            return value


class ServeMetrics:
    """The server's counters, histograms and in-flight gauge over a registry of its own.

    ``observe`` takes every finished request (mirrored ones count under their own slot); ``started`` and
    ``finished`` bracket each request for ``ftp_requests_in_flight``.
    """

    def __init__(self, max_label_values: int = MAX_LABEL_VALUES) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.label = BoundedLabels(max_label_values)
        routed = ["model", "slot", "version"]
        self.requests = Counter("ftp_requests_total", "Chat completion requests answered, by HTTP status",
                                [*routed, "status"], registry=self.registry)
        self.errors = Counter("ftp_request_errors_total", "Requests answered with an error (status >= 400)",
                              [*routed, "error_type"], registry=self.registry)
        self.duration = Histogram("ftp_request_duration_seconds", "Time from the request to its last byte",
                                  routed, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.ttft = Histogram("ftp_time_to_first_token_seconds", "Time from the request to its first answer text",
                              routed, buckets=TTFT_BUCKETS, registry=self.registry)
        self.tokens = Counter("ftp_tokens_total", "Tokens processed: prompt (read) and completion (generated)",
                              [*routed, "kind"], registry=self.registry)
        self.in_flight = Gauge("ftp_requests_in_flight", "Requests being answered now", registry=self.registry)

    def _routed(self, record: RequestRecord) -> dict[str, str]:
        """The model (the deployment, else the name asked for), slot and version labels of ``record``."""
        return {"model": self.label("model", record.endpoint or record.model),
                "slot": self.label("slot", record.slot or ""),
                "version": self.label("version", "" if record.model_version is None else str(record.model_version))}

    def observe(self, record: RequestRecord) -> None:
        """Count one finished request: status, error, latency, time to first token and tokens."""
        labels = self._routed(record)
        self.requests.labels(**labels, status=str(record.status)).inc()
        if record.status >= 400 or record.error_type:
            kind = record.error_type or f"http_{record.status}"
            self.errors.labels(**labels, error_type=self.label("error_type", kind)).inc()
        self.duration.labels(**labels).observe(max(record.latency_ms, 0.0) / 1000)
        if record.ttft_ms is not None:
            self.ttft.labels(**labels).observe(max(record.ttft_ms, 0.0) / 1000)
        for kind, count in (("prompt", record.prompt_tokens), ("completion", record.completion_tokens)):
            if count:
                self.tokens.labels(**labels, kind=kind).inc(count)

    def started(self) -> None:
        self.in_flight.inc()

    def finished(self) -> None:
        self.in_flight.dec()

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """(body, content type) for ``GET /metrics``: Prometheus' text format, or OpenMetrics when the
        scraper's ``Accept`` header asks for it."""
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
