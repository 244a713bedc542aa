"""The gateway's Prometheus metrics (job `gateway`), one registry per gateway.

Labels never carry what a caller chose freely: a model the gateway does not serve is
labelled `model=""`, so unknown names cannot grow the series count.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Edge latency buckets: the p99 budget is 50 ms; resolution where it matters.
LATENCY_BUCKETS = (
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5,
    1.0, 2.5,
)  # fmt: skip


class GatewayMetrics:
    """Counters, histograms and gauges of one gateway, on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._models: set[str] = set()
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Requests answered at the edge, by model and status class (2xx/4xx/5xx).",
            ["model", "status_class"],
            registry=r,
        )
        self.rejections = Counter(
            "gateway_rejections",
            "Requests answered with an error body, by rule: a client's mistake (4xx) or a "
            "failure behind the gateway (rules upstream_*).",
            ["model", "rule"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "gateway_request_duration_seconds",
            "Time from the request's arrival to its answer, at the edge.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_duration_seconds",
            "Time Triton took to answer a forwarded request.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_up = Gauge(
            "gateway_upstream_up", "1 when Triton answered the last readiness poll.", registry=r
        )
        self.decisions = Counter(
            "gateway_decisions",
            "Rows decided, by the version that answered and the decision (0/1).",
            ["model", "version", "decision"],
            registry=r,
        )
        self.log_queue_depth = Gauge(
            "gateway_inference_log_queue_depth",
            "Rows waiting to be written to the inference log.",
            registry=r,
        )
        self.log_dropped = Counter(
            "gateway_inference_log_dropped",
            "Rows not logged because the log queue was full (or unwritable at shutdown).",
            registry=r,
        )
        self.log_written = Counter(
            "gateway_inference_log_written", "Rows written to the inference log.", registry=r
        )
        self.log_write_errors = Counter(
            "gateway_inference_log_write_errors",
            "Failed attempts to write a batch of the inference log (retried).",
            registry=r,
        )
        self.labels_written = Counter(
            "gateway_labels_written",
            "Late labels written to the inference log (POST .../labels), by model.",
            ["model"],
            registry=r,
        )

        self.shadow_mirrored = Counter(
            "gateway_shadow_mirrored",
            "Mirrored requests the shadow challenger answered and the log took, by model.",
            ["model"],
            registry=r,
        )
        self.shadow_failures = Counter(
            "gateway_shadow_failures",
            "Mirrored requests the shadow challenger did not answer or the log did not take, "
            "by reason (not_loaded, contract, queue_full, timeout, upstream_unavailable, "
            "upstream_error, answer, threshold, log_full, shutdown, error); never seen by the "
            "caller.",
            ["model", "reason"],
            registry=r,
        )
        self.shadow_queue_depth = Gauge(
            "gateway_shadow_queue_depth", "Mirrored requests waiting for the shadow.", registry=r
        )
        self.shadow_seconds = Histogram(
            "gateway_shadow_duration_seconds",
            "Time the shadow challenger took to answer a mirrored request (off the request path).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

        self.canary_share = Gauge(
            "gateway_canary_share",
            "Share of a model's unversioned requests routed to its canary challenger now (the "
            "`canary_share` parameter of `<model>__canary`; 0 without one).",
            ["model"],
            registry=r,
        )
        self.canary_requests = Counter(
            "gateway_canary_requests",
            "Unversioned requests of a model while it has a canary, by the arm routed to and "
            "outcome: champion ok|error (a 5xx: Triton down, failing or without a threshold), "
            "canary ok|fallback (the canary did not answer and the champion answered instead).",
            ["model", "arm", "outcome"],
            registry=r,
        )
        self.canary_upstream_seconds = Histogram(
            "gateway_canary_upstream_duration_seconds",
            "Time Triton took to answer, by arm, while a model has a canary.",
            ["model", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def serving(self, model: str) -> bool:
        """Create a served model's request, label, shadow and canary series at 0, so a share of
        5xx, the label rate, the mirrored rate or the canary's error rate reads 0, not "no
        data", until the first event (once per model); returns whether `model` was new."""
        if model in self._models:
            return False
        self._models.add(model)
        for status_class in ("2xx", "4xx", "5xx"):
            self.requests.labels(model, status_class)
        self.labels_written.labels(model)
        self.shadow_mirrored.labels(model)
        self.shadow_seconds.labels(model)
        self.canary_share.labels(model)
        for arm, outcome in (("champion", "ok"), ("champion", "error"), ("canary", "ok"),
                             ("canary", "fallback")):  # fmt: skip
            self.canary_requests.labels(model, arm, outcome)
        for arm in ("champion", "canary"):
            self.canary_upstream_seconds.labels(model, arm)
        return True

    def answered(self, model: str, status: int, seconds: float) -> None:
        """Count one answered request and its edge latency."""
        self.requests.labels(model, f"{status // 100}xx").inc()
        self.request_seconds.labels(model).observe(seconds)
