"""Prometheus metrics of one app, in its own CollectorRegistry (two apps in a process never mix)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# regression outputs have no known scale: signed powers of ten cover it coarsely
VALUE_BUCKETS = tuple(sorted({s * 10.0**e for e in range(-2, 7) for s in (-1, 1)} | {0.0}))
OUTCOMES = ("ok", "invalid", "not_found", "too_large", "paused", "error")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    """Request counts, latency, in-flight requests, what the model answered and the prediction log's health."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "darkfab_requests",
            "Prediction requests by model, version, endpoint and outcome (ok, invalid, not_found, too_large, "
            "paused, error)",
            ["model", "version", "endpoint", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "darkfab_request_duration_seconds",
            "Time to answer a prediction request, from its body being read to its answer being built",
            ["model", "version", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("darkfab_requests_in_flight", "Prediction requests being answered now", registry=r)
        self.rows = Counter("darkfab_prediction_rows", "Rows predicted", ["model", "version"], registry=r)
        self.classes = Counter(
            "darkfab_predicted_class",
            "Predicted rows by class (classification)",
            ["model", "version", "cls"],
            registry=r,
        )
        self.values = Histogram(
            "darkfab_predicted_value",
            "Predicted values (regression)",
            ["model", "version"],
            buckets=VALUE_BUCKETS,
            registry=r,
        )
        self.served = Gauge("darkfab_served_version", "The model version being served", ["model", "role"], registry=r)
        self.paused = Gauge("darkfab_serving_paused", "1 while serving is paused by an operator", ["model"], registry=r)
        self.swaps = Counter("darkfab_model_swaps", "Models swapped in by promote or rollback", ["model"], registry=r)
        self.log_written = Counter("darkfab_prediction_log_written", "Predictions written to the store", registry=r)
        self.log_dropped = Counter(
            "darkfab_prediction_log_dropped", "Predictions not logged (queue full or store error)", registry=r
        )
        self.log_errors = Counter("darkfab_prediction_log_errors", "Failed writes of the prediction log", registry=r)

    def request(self, model: str, version: str, endpoint: str, outcome: str, seconds: float | None) -> None:
        self.requests.labels(model, version, endpoint, outcome).inc()
        if seconds is not None:
            self.latency.labels(model, version, endpoint).observe(seconds)

    def predicted(self, model: str, version: str, task: str, predictions: Sequence[Any]) -> None:
        self.rows.labels(model, version).inc(len(predictions))
        if task == "regression":
            hist = self.values.labels(model, version)
            for v in predictions:
                hist.observe(v)
        else:
            for cls, n in Tally(predictions).items():
                self.classes.labels(model, version, str(cls)).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
