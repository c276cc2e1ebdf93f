"""Feedback: the true label of a logged request, stored and fed to the live quality of the versions that predicted it.

Feedback is write-once by default (``deploy.feedback: write_once``): a second, different label for the same row
is refused (409) and recorded as a ``feedback_conflict`` event; ``last_wins`` replaces it and records the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import NotFoundError
from ..events import EventKind
from ._budget import EventBudget
from ._context import ServeContext
from ._errors import Conflict, InputError, ModelNotFound
from ._log import PredictionLogger
from ._router import Routing, ShadowWorker

CONFLICT_ROWS = 20  # earlier labels kept in a feedback_conflict event
CONFLICT_EVENTS = 60  # feedback_conflict events recorded per minute at most (the rest are counted)


def _checked(body: Any, classes: tuple[Any, ...], task: str) -> tuple[str, Any, int | None]:
    """(request_id, label, row) of a feedback body, or InputError naming the field."""
    if not isinstance(body, dict):
        raise InputError("body: expected an object {request_id, label, row?}", "body")
    extra = sorted(set(body) - {"request_id", "label", "row"})
    if extra:
        raise InputError(f"body: unknown field(s) {extra}; feedback holds request_id, label and row", extra[0])
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not request_id or len(request_id) > 64:
        raise InputError("request_id: expected the request_id string a prediction response returned", "request_id")
    if "label" not in body:
        raise InputError("label: required; the true answer for the request's prediction(s)", "label")
    label = body["label"]
    row = body.get("row")
    if row is not None and (type(row) is not int or row < 0):
        raise InputError(f"row: expected a row number >= 0 within the request, got {row!r}", "row")
    if task == "regression":
        if type(label) not in (int, float):
            raise InputError(f"label: expected a number (regression model), got {label!r:.60}", "label")
    elif not any(type(label) is type(c) and label == c for c in classes):
        raise InputError(f"label: {label!r:.60} is not one of the model's classes {list(classes)}", "label")
    return request_id, label, row


class FeedbackDesk:
    """Takes the labels of one factory's logged predictions (what ``POST /v1/feedback`` does)."""

    def __init__(
        self,
        ctx: ServeContext,
        *,
        logger: PredictionLogger | None,
        shadow: ShadowWorker,
        routing: Callable[[], Routing],
    ) -> None:
        self.store, self.factory, self.factory_id = ctx.store, ctx.factory, ctx.factory_id
        self.deploy, self.book = ctx.deploy, ctx.book
        self.logger = logger
        self.shadow = shadow
        self._routing = routing
        self._events = EventBudget(CONFLICT_EVENTS)

    def feedback(self, body: Any) -> dict[str, Any]:
        """Store the true label of a logged request (``{"request_id", "label", "row"?}``)."""
        dep = self._routing().champion
        request_id, label, row = _checked(body, dep.classes, dep.task)
        if self.logger is not None:
            self.logger.flush()  # the request's rows may still be in the queue
        write_once = self.deploy.feedback == "write_once"
        try:
            done = self.store.record_feedback(self.factory_id, request_id, label, row=row, write_once=write_once)
        except NotFoundError:
            which = f"row {row} of request" if row is not None else "request"
            raise ModelNotFound(
                f"no logged prediction for {which} {request_id!r} of {self.factory!r}; fix: use a request_id "
                "returned by /v1/models/{name}/predict or /v2/models/{name}/infer"
            ) from None
        if done.conflicts:
            self._conflicted(request_id, label, row, done.conflicts, write_once)
        routing = self._routing()
        if routing.challenger is not None and routing.mode == "shadow":
            self.shadow.drain(5.0)  # the challenger's shadow answer for these rows may still be queued
        self._labelled(request_id, row)
        return {"request_id": request_id, "updated": done.labelled}

    def _conflicted(
        self, request_id: str, label: Any, row: int | None, conflicts: tuple[tuple[int, Any], ...], write_once: bool
    ) -> None:
        """Record labels that differ from those held (``CONFLICT_EVENTS`` a minute at most); 409 if write-once."""
        held = [{"row": r, "label": held} for r, held in conflicts[:CONFLICT_ROWS]]
        if self._events.take():
            self.store.append_event(
                kind=EventKind.FEEDBACK_CONFLICT,
                reason=f"feedback {label!r:.60} for request {request_id} {'refused' if write_once else 'replaced'}"
                f" {len(conflicts)} earlier different label(s) (deploy.feedback: {self.deploy.feedback})",
                factory_id=self.factory_id,
                data={"request_id": request_id, "row": row, "label": label, "held": held},
            )
        if write_once:
            raise Conflict(
                f"request {request_id!r} already has a different label ({conflicts[0][1]!r:.60} for row "
                f"{conflicts[0][0]}); feedback is write-once (deploy.feedback: write_once), so nothing was "
                "changed; fix: send the label once, or set deploy.feedback: last_wins in the factory file",
                "label",
            )

    def _labelled(self, request_id: str, row: int | None) -> None:
        """Feed the new label(s) to the live quality of the versions that predicted those rows."""
        for p in self.store.list_predictions(self.factory_id, request_id=request_id):
            if (row is not None and p.row != row) or p.labelled_at is None:
                continue
            key = (request_id, p.row)
            figures = self.book.get(p.version)
            if figures is not None and isinstance(p.output, Mapping) and "prediction" in p.output:
                figures.labelled(key, p.output["prediction"], p.label)
            shadowed = self.book.shadow_of(request_id, p.row)
            if shadowed is not None:
                version, prediction = shadowed
                shadow_figures = self.book.get(version)
                if shadow_figures is not None:
                    shadow_figures.labelled(key, prediction, p.label)
