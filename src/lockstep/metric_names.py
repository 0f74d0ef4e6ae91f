"""The service's Prometheus metrics, named once: the service defines them (lockstep.serve.metrics),
the canary controller reads them from /metrics, and the Kubernetes analysis queries them in PromQL.

A counter named N is exposed as N_total, a histogram's buckets as N_bucket (Prometheus' rules).
"""

REQUESTS = "lockstep_requests"  # counter: requests answered, by variant and endpoint
ERRORS = "lockstep_errors"  # counter: requests failed (HTTP 5xx), by variant and endpoint
REJECTED = "lockstep_requests_rejected"  # counter: client mistakes (HTTP 4xx), by endpoint and status; no variant
LATENCY = "lockstep_request_latency_seconds"  # histogram: time to answer, by variant and endpoint
TOKENS = "lockstep_tokens"  # counter: LLM tokens, by variant and kind (input, output)
QUALITY_FAILURES = "lockstep_quality_failures"  # counter: empty, invalid, schema-failing or PII answers
CANARY_WEIGHT = "lockstep_canary_weight"  # gauge: share of cohorts on the canary, %
LOG_DROPPED = "lockstep_inference_log_dropped"  # counter: inference log records dropped


def total(counter: str) -> str:
    """The sample name Prometheus gives a counter."""
    return f"{counter}_total"


def bucket(histogram: str) -> str:
    """The sample name of a histogram's cumulative buckets."""
    return f"{histogram}_bucket"
