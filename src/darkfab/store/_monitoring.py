"""Monitor windows: each closed window of live traffic with its drift tests, live quality and verdict.

A window and the events it raises (``drift_detected``, ``quality_decay``) are written in ONE
transaction, so a monitor that restarts resumes exactly after the last window it stored. Windows of a
factory never overlap: a window must start after the last one ended, or the write is refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import StoreError
from ._base import Repository, check_name, inserted_id, json_dict
from ._records import PredictionRecord
from ._schema import monitor_windows, predictions


@dataclass(frozen=True)
class MonitorWindowRecord:
    """One closed window: ``number`` counts 1, 2, ... within the factory; ``version`` served most of its rows."""

    id: int
    factory_id: int
    number: int
    version: int | None
    opened_at: datetime
    closed_at: datetime
    rows: int
    first_prediction_id: int
    last_prediction_id: int
    drift: dict[str, Any]
    share_drifted: float
    dataset_drift: bool
    prediction_drift: bool
    quality: dict[str, Any]
    triggered: bool
    reason: str


def _aware(value: Any, what: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise StoreError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value


class Monitoring(Repository):
    """The ``monitor_windows`` table, and the reads a monitor makes of the prediction log."""

    def add_monitor_window(
        self,
        factory_id: int,
        *,
        version: int | None,
        opened_at: datetime,
        closed_at: datetime,
        rows: int,
        first_prediction_id: int,
        last_prediction_id: int,
        drift: Mapping[str, Any],
        share_drifted: float,
        dataset_drift: bool,
        prediction_drift: bool,
        quality: Mapping[str, Any],
        triggered: bool,
        reason: str = "",
        events: Sequence[tuple[str, str]] = (),
    ) -> MonitorWindowRecord:
        """Store a closed window, and append one event per ``(kind, reason)`` in ``events``, in one transaction.

        Each event's reason is prefixed with ``window N:``, and its data names the window and the version.

        Raises StoreError when the window starts at or before the end of the factory's last window
        (another monitor closed it first).
        """
        if first_prediction_id > last_prediction_id or rows < 1:
            raise StoreError(
                f"a monitor window needs rows >= 1 and first_prediction_id <= last_prediction_id, got {rows=}, "
                f"{first_prediction_id=}, {last_prediction_id=}"
            )
        for kind, _ in events:
            check_name(kind, "an event kind")
        values: dict[str, Any] = {
            "factory_id": factory_id,
            "version": version,
            "opened_at": _aware(opened_at, "opened_at"),
            "closed_at": _aware(closed_at, "closed_at"),
            "rows": int(rows),
            "first_prediction_id": int(first_prediction_id),
            "last_prediction_id": int(last_prediction_id),
            "drift": json_dict(drift, "the drift of a monitor window"),
            "share_drifted": float(share_drifted),
            "dataset_drift": bool(dataset_drift),
            "prediction_drift": bool(prediction_drift),
            "quality": json_dict(quality, "the quality of a monitor window"),
            "triggered": bool(triggered),
            "reason": str(reason),
        }
        t = monitor_windows.c
        with self._base._write(f"store a monitor window of factory id {factory_id}") as conn:
            name = self._base._factory_name(conn, factory_id)
            last = conn.execute(
                sa.select(t.number, t.last_prediction_id)
                .where(t.factory_id == factory_id)
                .order_by(t.number.desc())
                .limit(1)
            ).first()
            if last is not None and first_prediction_id <= last.last_prediction_id:
                raise StoreError(
                    f"monitor window of factory {name!r} starting at prediction {first_prediction_id} overlaps "
                    f"window {last.number}, which ended at prediction {last.last_prediction_id}; another monitor "
                    "closed it first; fix: run one monitor per factory, or re-read the windows and resume"
                )
            values["number"] = 1 if last is None else last.number + 1
            new_id = inserted_id(conn.execute(monitor_windows.insert(), values))
            now = self._base.clock()
            for kind, why in events:
                self._base._event(
                    conn,
                    now,
                    kind=kind,
                    reason=f"window {values['number']}: {why}",
                    factory_id=factory_id,
                    data={"window": values["number"], "window_id": new_id, "version": version},
                )
        return MonitorWindowRecord(id=new_id, **values)

    def list_monitor_windows(self, factory_id: int, *, limit: int | None = None) -> list[MonitorWindowRecord]:
        """A factory's windows oldest first; with ``limit``, the newest ``limit`` of them (still oldest first)."""
        t = monitor_windows.c
        newest_first = limit is not None
        query = (
            sa.select(monitor_windows)
            .where(t.factory_id == factory_id)
            .order_by(t.number.desc() if newest_first else t.number)
            .limit(limit)
        )
        with self._base._read("list monitor windows") as conn:
            found = [MonitorWindowRecord(**r._mapping) for r in conn.execute(query)]
        if newest_first:
            found.reverse()
        return found

    def last_monitor_window(self, factory_id: int) -> MonitorWindowRecord | None:
        """The factory's newest window, or None before the first."""
        found = self.list_monitor_windows(factory_id, limit=1)
        return found[0] if found else None

    def list_predictions_after(self, factory_id: int, after_id: int, *, limit: int) -> list[PredictionRecord]:
        """Up to ``limit`` logged predictions with an id above ``after_id``, oldest first."""
        if limit < 1:
            raise StoreError(f"limit must be >= 1, got {limit}")
        query = (
            sa.select(predictions)
            .where(predictions.c.factory_id == factory_id, predictions.c.id > after_id)
            .order_by(predictions.c.id)
            .limit(limit)
        )
        with self._base._read("list predictions") as conn:
            return [PredictionRecord(**r._mapping) for r in conn.execute(query)]
