"""Windows of live traffic: read the prediction log, close windows, test them, store them, decide.

A window closes when it holds ``spec.window`` rows, or, with ``max_age_s``, when its oldest row is that
old (and it holds at least ``min_rows``). Each closed window is stored with its events in one
transaction; the next check resumes after the last stored window, so a restarted monitor neither skips
nor repeats rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from ..data import infer_task
from ..errors import NotFoundError
from ..spec import METRICS, MonitorSpec, TaskKind
from ..store import MonitorWindowRecord, PredictionRecord, Store
from ._alerts import Alerter
from ._drift import DriftReport, Reference, detect_drift
from ._quality import LiveQuality, assess_quality, prediction_of

log = logging.getLogger("darkfab.monitor")


@dataclass(frozen=True)
class WindowResult:
    """A window just closed: its stored record, its tests, and whether a new campaign should start."""

    record: MonitorWindowRecord
    drift: DriftReport
    quality: LiveQuality
    trigger: bool  # drift or decay, and the file lets the monitor retrain
    reason: str  # why it drifted or decayed; empty when neither

    @property
    def number(self) -> int:
        return self.record.number

    @property
    def alarm(self) -> bool:
        """Drift or decay, whether or not it may start a campaign."""
        return self.drift.dataset_drift or self.quality.decayed


class Monitor:
    """Watches one factory's live traffic.

    Args:
        store: the store the model server logs predictions to.
        factory: the factory's name.
        reference: the training features, or a :class:`Reference` built from them.
        feature_types: column -> ``numeric`` | ``categorical`` (``Dataset.feature_types``).
        spec: the file's ``monitor`` section.
        reference_predictions: the champion's predictions on the reference, for prediction drift.
        task: ``classification`` or ``regression``; from the champion's metric or the labels when absent.
        max_age_s: also close a window whose oldest row is this many seconds old.
        min_rows: a window closed by age needs at least this many rows.
        min_labels: live quality below this many labelled rows never decays.
        alerter: where drift and decay alerts go; ``Alerter(spec.webhook)`` when absent.
        clock: the current time (for tests); ``datetime.now(timezone.utc)`` when absent.
    """

    def __init__(
        self,
        store: Store,
        factory: str,
        reference: pd.DataFrame | Reference,
        feature_types: Mapping[str, str] | None,
        spec: MonitorSpec,
        reference_predictions: Any = None,
        *,
        task: TaskKind | None = None,
        max_age_s: float | None = None,
        min_rows: int = 20,
        min_labels: int = 20,
        alerter: Alerter | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s!r}")
        if min_rows < 1 or min_labels < 1:
            raise ValueError(f"min_rows and min_labels must be >= 1, got {min_rows=}, {min_labels=}")
        self.store = store
        self.factory = factory
        self.factory_id = store.get_factory(factory).id
        self.spec = spec
        if isinstance(reference, Reference):
            self.reference = reference
            if reference_predictions is not None and reference.prediction is None:
                reference.set_predictions(reference_predictions)
        else:
            self.reference = Reference(reference, feature_types, predictions=reference_predictions)
        self.task = task
        self.max_age_s = max_age_s
        self.min_rows = min_rows
        self.min_labels = min_labels
        self.alerter = alerter if alerter is not None else Alerter(spec.webhook)
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"Monitor({self.factory!r}, window={self.spec.window}, {self.reference!r})"

    # -- the check ---------------------------------------------------------------------------------

    def check(self) -> list[WindowResult]:
        """Close, test and store every window the log now fills; returns them oldest first."""
        last = self.store.last_monitor_window(self.factory_id)
        after = last.last_prediction_id if last is not None else 0
        size = self.spec.window
        closed: list[WindowResult] = []
        while True:
            rows = self.store.list_predictions_after(self.factory_id, after, limit=size)
            if len(rows) < size:
                if rows and self._old_enough(rows):
                    closed.append(self._close(rows, by_age=True))
                break
            closed.append(self._close(rows, by_age=False))
            after = rows[-1].id
        return closed

    def _old_enough(self, rows: list[PredictionRecord]) -> bool:
        if self.max_age_s is None or len(rows) < self.min_rows:
            return False
        return (self._clock() - rows[0].created_at).total_seconds() >= self.max_age_s

    def _close(self, rows: list[PredictionRecord], *, by_age: bool) -> WindowResult:
        version = Counter(r.version for r in rows).most_common(1)[0][0]
        current = pd.DataFrame.from_records([r.features for r in rows])
        outputs = [prediction_of(r.output) for r in rows]
        drift = detect_drift(
            self.reference,
            current,
            method=self.spec.method,
            threshold=self.spec.threshold,
            drift_share=self.spec.drift_share,
            current_predictions=outputs if self.reference.prediction is not None else None,
        )
        quality = self._quality(rows, version)
        reasons: list[tuple[str, str]] = []
        if drift.dataset_drift:
            reasons.append(("drift_detected", f"dataset drift: {drift.describe()}"))
        if quality.decayed:
            reasons.append(("quality_decay", f"quality decay: {quality.describe()}"))
        pred = drift.prediction_drift
        reason = "; ".join(why for _, why in reasons)
        if pred is not None and pred.drifted:
            reason += ("; " if reason else "") + f"prediction drift: {pred.describe()}"
        trigger = bool(reasons) and self.spec.retrain
        if reasons and not self.spec.retrain:
            reason += " (monitor.retrain is off: no campaign starts)"
        record = self.store.add_monitor_window(
            self.factory_id,
            version=version,
            opened_at=rows[0].created_at,
            closed_at=self._clock() if by_age else rows[-1].created_at,
            rows=len(rows),
            first_prediction_id=rows[0].id,
            last_prediction_id=rows[-1].id,
            drift={**drift.to_dict(), "closed_by": "age" if by_age else "count"},
            share_drifted=drift.share_drifted,
            dataset_drift=drift.dataset_drift,
            prediction_drift=pred is not None and pred.drifted,
            quality=quality.to_dict(),
            triggered=trigger,
            reason=reason,
            events=reasons,
        )
        result = WindowResult(record, drift, quality, trigger, reason)
        self._alert(result)
        return result

    def _alert(self, result: WindowResult) -> None:
        data = {
            "window": result.number,
            "version": result.record.version,
            "rows": result.record.rows,
            "share_drifted": result.drift.share_drifted,
            "drifted_columns": result.drift.drifted_columns,
            "quality": result.quality.to_dict(),
            "trigger": result.trigger,
        }
        if result.drift.dataset_drift:
            self.alerter.send(
                "drift", factory=self.factory, reason=f"window {result.number}: {result.reason}", data=data
            )
        if result.quality.decayed:
            self.alerter.send(
                "quality_decay", factory=self.factory, reason=f"window {result.number}: {result.reason}", data=data
            )

    # -- live quality ------------------------------------------------------------------------------

    def _champion_score(self, version: int) -> tuple[str | None, float | None]:
        try:
            record = self.store.get_model_version(self.factory_id, version)
        except NotFoundError:
            return None, None
        sealed = record.metrics.get("sealed_test") or {}
        score = sealed.get("score")
        return sealed.get("metric"), float(score) if isinstance(score, (int, float)) else None

    def _quality(self, rows: list[PredictionRecord], version: int) -> LiveQuality:
        labelled = [r for r in rows if r.labelled_at is not None]
        labels = [r.label for r in labelled]
        predictions = [prediction_of(r.output) for r in labelled]
        metric, score = self._champion_score(version)
        task = self.task
        if task is None and metric in METRICS and len(METRICS[metric].tasks) == 1:
            task = METRICS[metric].tasks[0]
        if task is None:
            task = infer_task(pd.Series(labels)) if labels else "classification"
        return assess_quality(
            labels,
            predictions,
            task=task,
            champion_metric=metric,
            champion_score=score,
            quality_drop=self.spec.quality_drop,
            min_labels=self.min_labels,
        )
