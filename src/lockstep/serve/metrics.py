"""The service's Prometheus metrics, in a registry of its own (one per app); names from
lockstep.metric_names, where the canary and the Kubernetes analysis read them too."""

from __future__ import annotations

from lockstep import metric_names as names

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)


class Metrics:
    """Requests, errors, latency, tokens and quality failures per variant; the canary's weight."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        labels = ("variant", "endpoint")
        self.requests = Counter(names.REQUESTS, "Requests answered", labels, registry=self.registry)
        self.errors = Counter(names.ERRORS, "Requests failed (HTTP 5xx)", labels, registry=self.registry)
        self.rejected = Counter(
            names.REJECTED, "Requests refused as the client's mistake (HTTP 4xx): never a variant's error",
            ("endpoint", "status"), registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            names.LATENCY, "Time to answer", labels, buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.tokens = Counter(names.TOKENS, "LLM tokens", ("variant", "kind"), registry=self.registry)
        self.quality = Counter(
            names.QUALITY_FAILURES, "Empty, invalid, schema-failing or PII answers", ("variant", "kind"),
            registry=self.registry,
        )  # fmt: skip
        self.weight = Gauge(names.CANARY_WEIGHT, "Share of cohorts on the canary, %", registry=self.registry)
        self.log_dropped = Counter(
            names.LOG_DROPPED, "Inference log records dropped (queue full or write failed)", registry=self.registry
        )
