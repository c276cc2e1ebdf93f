"""The prediction log: many rows per transaction, no audit event per row, labels that arrive later."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import NotFoundError, StoreError
from ._base import Repository
from ._records import PredictionRecord
from ._schema import predictions

_REQUIRED = ("factory_id", "version", "request_id", "features", "output")
_KNOWN = frozenset((*_REQUIRED, "row", "created_at"))
_MAX_REQUEST_ID = 64


def _int(value: Any, what: str, i: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"prediction row {i}: {what} must be an integer, got {value!r}")
    return value


def _request_id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_REQUEST_ID:
        raise StoreError(
            f"{where}: request_id must be a non-empty string of at most {_MAX_REQUEST_ID} characters, got {value!r:.80}"
        )
    return value


def _row_values(row: Any, i: int, now: datetime) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise StoreError(f"prediction row {i} must be a dict, got {type(row).__name__}")
    missing = [k for k in _REQUIRED if k not in row]
    unknown = sorted(set(row) - _KNOWN)
    if missing or unknown:
        raise StoreError(
            f"prediction row {i}: missing keys {missing}, unknown keys {unknown}; a row holds "
            f"{sorted(_KNOWN)} (row and created_at are optional)"
        )
    if not isinstance(row["features"], Mapping):
        raise StoreError(f"prediction row {i}: features must be a dict of column -> value")
    created = row.get("created_at") or now
    if not isinstance(created, datetime) or created.tzinfo is None:
        raise StoreError(f"prediction row {i}: created_at must be a timezone-aware datetime, got {created!r}")
    return {
        "factory_id": _int(row["factory_id"], "factory_id", i),
        "version": _int(row["version"], "version", i),
        "request_id": _request_id(row["request_id"], f"prediction row {i}"),
        "row": _int(row.get("row", 0), "row", i),
        "created_at": created,
        "features": dict(row["features"]),
        "output": row["output"],
        "label": None,
        "labelled_at": None,
    }


def same_label(a: Any, b: Any) -> bool:
    """Labels as JSON keeps them: 1 and 1.0 are the same number, "1" and 1 are not, nor True and 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


@dataclass(frozen=True)
class FeedbackResult:
    """What :meth:`Store.record_feedback` did: rows newly labelled, and rows that already held a
    different label (``conflicts``: (row, label held); kept as they were when the feedback is write-once)."""

    labelled: int
    unchanged: int
    conflicts: tuple[tuple[int, Any], ...]


class _Refused(Exception):
    def __init__(self, result: FeedbackResult) -> None:
        super().__init__("write-once feedback refused")
        self.result = result


class Predictions(Repository):
    """The ``predictions`` table. Serving writes it in batches; monitoring reads it back."""

    def log_predictions(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert served predictions in ONE transaction; returns how many were written.

        Each row: ``factory_id``, ``version``, ``request_id``, ``features`` (column -> raw value),
        ``output`` (any JSON value), and optionally ``row`` (position in its request, default 0) and
        ``created_at`` (aware datetime, default now). Predictions are not decisions: no event is appended.
        """
        now = self._base.clock()
        values = [_row_values(r, i, now) for i, r in enumerate(rows)]
        if not values:
            return 0
        with self._base._write(f"log {len(values)} predictions", chain=False) as conn:
            conn.execute(predictions.insert(), values)
        return len(values)

    def add_feedback(self, factory_id: int, request_id: str, label: Any, *, row: int | None = None) -> int:
        """Record the true ``label`` of a request's predictions (of one ``row`` of it when given).

        The last label wins. Returns the number of rows it names; NotFoundError when the factory logged no
        such request (or row).
        """
        done = self.record_feedback(factory_id, request_id, label, row=row, write_once=False)
        return done.labelled + done.unchanged

    def logged_keys(self, factory_id: int, request_ids: Sequence[str]) -> set[tuple[str, int]]:
        """The (request_id, row) pairs of ``request_ids`` already in the log (to replay a log without doubles)."""
        found: set[tuple[str, int]] = set()
        ids = sorted(set(request_ids))
        with self._base._read("list logged prediction keys") as conn:
            for i in range(0, len(ids), 500):
                query = sa.select(predictions.c.request_id, predictions.c.row).where(
                    predictions.c.factory_id == factory_id, predictions.c.request_id.in_(ids[i : i + 500])
                )
                found.update((r.request_id, r.row) for r in conn.execute(query))
        return found

    def record_feedback(
        self, factory_id: int, request_id: str, label: Any, *, row: int | None = None, write_once: bool = True
    ) -> FeedbackResult:
        """Record the true ``label`` of a request's predictions (of one ``row`` when given), in ONE transaction.

        ``write_once``: a row keeps the first label it got (a different one is reported in ``conflicts``,
        the same one again changes nothing); otherwise the last label wins. NotFoundError when the factory
        logged no such request (or row). Safe under concurrency: a row is labelled only while unlabelled.
        """
        _request_id(request_id, "feedback")
        if row is not None:
            _int(row, "row", 0)
        where = [predictions.c.factory_id == factory_id, predictions.c.request_id == request_id]
        if row is not None:
            where.append(predictions.c.row == row)
        try:
            with self._base._write(f"record feedback for request {request_id!r}", chain=False) as conn:
                now = self._base.clock()
                fresh = conn.execute(
                    predictions.update()
                    .where(*where, predictions.c.labelled_at.is_(None))
                    .values(label=label, labelled_at=now)
                ).rowcount
                held = conn.execute(
                    sa.select(
                        predictions.c.id, predictions.c.row, predictions.c.label, predictions.c.labelled_at
                    ).where(*where)
                ).all()
                if not held:
                    which = f"row {row} of request" if row is not None else "request"
                    raise NotFoundError(
                        f"no logged prediction for {which} {request_id!r} of factory id {factory_id} in the store "
                        f"at {self._base._shown}; fix: use the request_id a prediction response returned"
                    )
                other = [h for h in held if h.labelled_at != now and not same_label(h.label, label)]
                conflicts = tuple((h.row, h.label) for h in other)
                if other and write_once:
                    raise _Refused(FeedbackResult(labelled=0, unchanged=len(held), conflicts=conflicts))
                if other:
                    ids = [h.id for h in other]
                    conn.execute(
                        predictions.update().where(predictions.c.id.in_(ids)).values(label=label, labelled_at=now)
                    )
                labelled = fresh + len(other)
                return FeedbackResult(labelled=labelled, unchanged=len(held) - labelled, conflicts=conflicts)
        except _Refused as refused:  # write-once: nothing of this feedback is kept (the transaction rolled back)
            return refused.result

    def list_predictions(
        self,
        factory_id: int,
        *,
        request_id: str | None = None,
        version: int | None = None,
        labelled: bool | None = None,
        limit: int | None = None,
    ) -> list[PredictionRecord]:
        """Logged predictions oldest first; with ``limit``, the newest ``limit`` of them (still oldest first)."""
        query = sa.select(predictions).where(predictions.c.factory_id == factory_id)
        if request_id is not None:
            query = query.where(predictions.c.request_id == request_id)
        if version is not None:
            query = query.where(predictions.c.version == version)
        if labelled is not None:
            query = query.where(
                predictions.c.labelled_at.is_not(None) if labelled else predictions.c.labelled_at.is_(None)
            )
        newest_first = limit is not None
        query = query.order_by(predictions.c.id.desc() if newest_first else predictions.c.id).limit(limit)
        with self._base._read("list predictions") as conn:
            found = [PredictionRecord(**r._mapping) for r in conn.execute(query)]
        if newest_first:
            found.reverse()
        return found
