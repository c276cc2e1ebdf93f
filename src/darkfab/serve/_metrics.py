"""Prometheus metrics of one app, in its own CollectorRegistry (two apps in a process never mix)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

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
        self.share = Gauge(
            "darkfab_routing_canary_share",
            "Share of requests sent to the challenger (0 without a canary)",
            ["model"],
            registry=r,
        )
        self.decisions = Counter(
            "darkfab_routing_decisions",
            "Challenger contests decided by the server, by outcome (promoted, rolled_back)",
            ["model", "outcome"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "darkfab_shadow_dropped", "Requests not shadowed because the shadow queue was full", ["model"], registry=r
        )
        self.reload_errors = Counter(
            "darkfab_reload_errors", "Model versions the server could not load on an alias move", ["model"], registry=r
        )

    def add_live(self, model: str, source: Callable[[], list[tuple[str, dict[str, Any]]]]) -> None:
        """Export the live figures that ``source`` returns as (role, LiveFigures.snapshot()) pairs."""
        self.registry.register(_LiveCollector(model, source))

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


class _LiveCollector(Collector):
    """Live figures per version and role, read from the service at each scrape."""

    def __init__(self, model: str, source: Callable[[], list[tuple[str, dict[str, Any]]]]) -> None:
        self.model = model
        self.source = source

    def describe(self) -> list[Any]:
        return []  # computed at scrape time; nothing to check at registration

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["model", "version", "role"]

        def family(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        requests = family("darkfab_live_requests", "Requests a version predicted since the current routing began")
        errors = family("darkfab_live_errors", "Requests on which a version's model raised")
        error_rate = family("darkfab_live_error_rate", "errors / requests of a version")
        latency = family("darkfab_live_latency_seconds", "Model latency quantiles of a version", ("quantile",))
        quality = family("darkfab_live_quality", "Live quality on labelled rows (accuracy or rmse)", ("metric",))
        labelled = family("darkfab_live_labelled_rows", "Rows of a version's predictions with a label")
        shares = family("darkfab_live_class_share", "Share of predicted rows per class", ("cls",))
        moments = family("darkfab_live_prediction", "Mean and std of predicted values (regression)", ("stat",))
        for role, snap in self.source():
            base = [self.model, str(snap["version"]), role]
            requests.add_metric(base, snap["requests"])
            errors.add_metric(base, snap["errors"])
            error_rate.add_metric(base, snap["error_rate"])
            for q, key in (("0.5", "latency_p50_ms"), ("0.95", "latency_p95_ms")):
                if snap[key] is not None:
                    latency.add_metric([*base, q], snap[key] / 1000.0)
            q_snap = snap["quality"]
            labelled.add_metric(base, q_snap["labelled_rows"])
            if q_snap["value"] is not None:
                quality.add_metric([*base, q_snap["metric"]], q_snap["value"])
            dist = snap["distribution"]
            for cls, share in dist.get("classes", {}).items():
                shares.add_metric([*base, cls], share)
            for stat in ("mean", "std"):
                if dist.get(stat) is not None:
                    moments.add_metric([*base, stat], dist[stat])
        yield from (requests, errors, error_rate, latency, quality, labelled, shares, moments)


class DriftCollector(Collector):
    """The newest monitor window's figures, read from the store at each scrape (any process may run the monitor)."""

    def __init__(self, model: str, source: Callable[[], Any]) -> None:
        self.model = model
        self.source = source  # returns the newest MonitorWindowRecord, or None

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            window = self.source()
        except Exception:  # a scrape must not fail because the store is busy; the next one retries
            window = None
        if window is None:
            return
        m = [self.model]
        number = GaugeMetricFamily("darkfab_drift_window", "Number of the newest monitor window", labels=["model"])
        number.add_metric(m, window.number)
        share = GaugeMetricFamily(
            "darkfab_drift_share", "Share of features that drifted in the newest window", labels=["model"]
        )
        share.add_metric(m, window.share_drifted)
        dataset = GaugeMetricFamily(
            "darkfab_dataset_drift", "1 when the newest window showed dataset drift", labels=["model"]
        )
        dataset.add_metric(m, 1.0 if window.dataset_drift else 0.0)
        prediction = GaugeMetricFamily(
            "darkfab_prediction_drift", "1 when the newest window's predictions drifted", labels=["model"]
        )
        prediction.add_metric(m, 1.0 if window.prediction_drift else 0.0)
        feature = GaugeMetricFamily(
            "darkfab_drift_statistic",
            "Per-feature drift statistic of the newest window (a p-value for ks/chi2, a distance otherwise)",
            labels=["model", "feature", "method"],
        )
        for col in (window.drift or {}).get("columns", []):
            if col.get("statistic") is not None:
                feature.add_metric([self.model, str(col["column"]), str(col["method"])], float(col["statistic"]))
        yield from (number, share, dataset, prediction, feature)
        value = (window.quality or {}).get("value")
        if value is not None:
            quality = GaugeMetricFamily(
                "darkfab_window_quality", "Live quality of the newest window", labels=["model", "metric"]
            )
            quality.add_metric([self.model, str(window.quality.get("metric", ""))], float(value))
            yield quality
