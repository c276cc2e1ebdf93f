"""Live figures of each served version: requests, errors, latency, what it predicted, and live quality.

Kept in memory, per version, from the moment the server loads the version; they start again for both
versions whenever a new champion/challenger pair meets (a contest compares figures taken over the same
stretch of traffic). Bounded everywhere: latency over the newest ``LATENCY_WINDOW`` requests, quality over
the newest ``LABEL_WINDOW`` labelled rows, shadow answers over the newest ``SHADOW_WINDOW`` rows.

Latency is the time the model takes to predict a request's rows (``Deployment.predict``), measured the
same way whether the version answers the request or shadows it, so the two can be compared.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import numpy as np

LATENCY_WINDOW = 4096
LABEL_WINDOW = 50_000
SHADOW_WINDOW = 100_000


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 4)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


class LiveFigures:
    """The figures of one version. Thread-safe; each update is a few dictionary operations."""

    def __init__(self, version: int, task: str) -> None:
        self.version = version
        self.task = task
        self._lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.rows = 0
        self._latency: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._classes: Counter[str] = Counter()
        self._sum = 0.0
        self._sumsq = 0.0
        self._scores: OrderedDict[tuple[str, int], float] = OrderedDict()

    def answered(self, seconds: float, predictions: Sequence[Any]) -> int:
        """One request predicted without error; returns the version's request count after it."""
        with self._lock:
            self.requests += 1
            self.rows += len(predictions)
            self._latency.append(seconds)
            if self.task == "regression":
                for v in predictions:
                    self._sum += float(v)
                    self._sumsq += float(v) * float(v)
            else:
                self._classes.update(str(p) for p in predictions)
            return self.requests

    def failed(self) -> int:
        """One request on which the model raised; returns the version's request count after it."""
        with self._lock:
            self.requests += 1
            self.errors += 1
            return self.requests

    def labelled(self, key: tuple[str, int], prediction: Any, label: Any) -> None:
        """The true label of one row this version predicted (a second label for the same row replaces it)."""
        if self.task == "regression":
            score = (float(prediction) - float(label)) ** 2
        else:
            score = 1.0 if _same(prediction, label) else 0.0
        with self._lock:
            self._scores[key] = score
            self._scores.move_to_end(key)
            while len(self._scores) > LABEL_WINDOW:
                self._scores.popitem(last=False)

    @property
    def quality_metric(self) -> str:
        return "rmse" if self.task == "regression" else "accuracy"

    def snapshot(self) -> dict[str, Any]:
        """The figures as JSON-ready values (latency in milliseconds; None where nothing was seen yet)."""
        with self._lock:
            latency = np.asarray(self._latency, dtype=float)
            scores = list(self._scores.values())
            requests, errors, rows = self.requests, self.errors, self.rows
            classes = dict(self._classes)
            total, totalsq = self._sum, self._sumsq
        p50, p95 = (
            (float(np.quantile(latency, 0.5)), float(np.quantile(latency, 0.95))) if latency.size else (None,) * 2
        )
        if self.task == "regression":
            mean = total / rows if rows else None
            std = math.sqrt(max(0.0, totalsq / rows - mean * mean)) if mean is not None else None
            distribution: dict[str, Any] = {"mean": mean, "std": std}
        else:
            n = sum(classes.values())
            distribution = {"classes": {c: k / n for c, k in sorted(classes.items())} if n else {}}
        quality = None
        if scores:
            mean_score = float(np.mean(scores))
            quality = math.sqrt(mean_score) if self.task == "regression" else mean_score
        return {
            "version": self.version,
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
            "rows": rows,
            "latency_p50_ms": _ms(p50),
            "latency_p95_ms": _ms(p95),
            "distribution": distribution,
            "quality": {"metric": self.quality_metric, "value": quality, "labelled_rows": len(scores)},
        }


class LiveBook:
    """Figures of every version loaded, and the challenger's shadow answers kept for labels to meet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: dict[int, LiveFigures] = {}
        self._shadow: OrderedDict[tuple[str, int], tuple[int, Any]] = OrderedDict()

    def of(self, version: int, task: str) -> LiveFigures:
        with self._lock:
            found = self._figures.get(version)
            if found is None:
                found = self._figures[version] = LiveFigures(version, task)
            return found

    def get(self, version: int) -> LiveFigures | None:
        with self._lock:
            return self._figures.get(version)

    def restart(self, keep: dict[int, str]) -> None:
        """Fresh figures for the versions in ``keep`` (version -> task); the others are forgotten."""
        with self._lock:
            self._figures = {v: LiveFigures(v, task) for v, task in keep.items()}
            self._shadow.clear()

    def remember_shadow(self, request_id: str, version: int, predictions: Sequence[Any]) -> None:
        with self._lock:
            for row, p in enumerate(predictions):
                self._shadow[(request_id, row)] = (version, p)
            while len(self._shadow) > SHADOW_WINDOW:
                self._shadow.popitem(last=False)

    def shadow_of(self, request_id: str, row: int) -> tuple[int, Any] | None:
        with self._lock:
            return self._shadow.get((request_id, row))

    def snapshot(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            figures = list(self._figures.values())
        return {f.version: f.snapshot() for f in figures}
