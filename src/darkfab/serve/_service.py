"""What the server does, without HTTP: the model it serves, predictions, feedback and operator actions.

The served model is one immutable :class:`Deployment` held in ONE attribute. A request reads that
attribute once and uses what it got to the end, so a swap (promote, rollback) never mixes two models in
one answer and never makes a request wait: the new model is loaded and checked completely before the
attribute is replaced, and requests already running finish on the old one.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from ..errors import NotFoundError
from ..registry import Registry
from ..store import ModelVersionRecord, Store
from ..train import DarkfabModel, load_model
from ._errors import BadRequest, Conflict, InputError, ModelNotFound, Unavailable
from ._inputs import FeatureSchema
from ._log import PredictionLogger
from ._metrics import ServeMetrics

CHAMPION = "champion"
OUTPUTS = ("predictions", "probabilities")


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _class_datatype(classes: tuple[Any, ...]) -> str:
    if all(type(c) is bool for c in classes):
        return "BOOL"
    if all(type(c) is int for c in classes):
        return "INT64"
    return "BYTES"


@dataclass(frozen=True)
class Deployment:
    """A loaded model version and everything a request needs from it. Never changed once made."""

    factory: str
    factory_id: int
    record: ModelVersionRecord
    model: DarkfabModel
    schema: FeatureSchema
    classes: tuple[Any, ...]  # JSON-ready (plain Python) class labels; () for regression

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def task(self) -> str:
        return str(self.model.task)

    def metadata(self) -> dict[str, Any]:
        outputs: list[dict[str, Any]] = []
        if self.task == "regression":
            outputs.append({"name": "predictions", "datatype": "FP64", "shape": [-1]})
        else:
            outputs.append({"name": "predictions", "datatype": _class_datatype(self.classes), "shape": [-1]})
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.classes)]})
        return {
            "name": self.factory,
            "versions": [str(self.version)],
            "platform": "darkfab",
            "inputs": self.schema.metadata(),
            "outputs": outputs,
            "parameters": {
                "task": self.task,
                "trainer": self.record.trainer,
                "classes": list(self.classes),
                "artifact_hash": self.record.artifact_hash,
                "aliases": list(self.record.aliases),
            },
        }

    def predict(self, frame: pd.DataFrame) -> tuple[list[Any], list[list[float]] | None]:
        """Predictions as plain Python values, and class probabilities (rows in class order) or None."""
        raw = self.model.predict_raw(frame)
        if self.task == "regression":
            return np.asarray(raw, dtype=float).tolist(), None
        proba = np.asarray(raw, dtype=float)
        return [self.classes[i] for i in proba.argmax(axis=1).tolist()], proba.tolist()


def load_deployment(registry: Registry, factory: str, ref: int | str) -> Deployment:
    """Load a version: its artifact's hash is verified (Registry.load_bytes) before it is unpickled."""
    record, blob = registry.load_bytes(factory, ref)
    model = load_model(blob)
    classes = tuple(_plain(c) for c in model.classes) if model.task != "regression" else ()
    return Deployment(
        factory=factory,
        factory_id=record.factory_id,
        record=record,
        model=model,
        schema=FeatureSchema.of(tuple(model.features), dict(model.feature_types)),
        classes=classes,
    )


@dataclass(frozen=True)
class Answer:
    """One answered prediction request."""

    deployment: Deployment
    request_id: str
    predictions: list[Any]
    probabilities: list[list[float]] | None


class ModelService:
    """Serves the ``champion`` of one factory; operator actions are recorded in the store with reasons."""

    def __init__(
        self,
        *,
        store: Store,
        factory: str,
        metrics: ServeMetrics | None = None,
        log_predictions: bool = True,
        flush_interval_s: float = 0.2,
        flush_rows: int = 500,
    ) -> None:
        self.store = store
        self.registry = Registry(store)
        self.factory = factory
        self.metrics = metrics or ServeMetrics()
        self.current: Deployment = load_deployment(self.registry, factory, CHAMPION)
        self.factory_id = self.current.factory_id
        self.paused: str | None = self._paused_in_store()
        self.logger = (
            PredictionLogger(store, self.metrics, interval_s=flush_interval_s, batch_rows=flush_rows)
            if log_predictions
            else None
        )
        self._admin = threading.Lock()
        self.metrics.served.labels(factory, CHAMPION).set(self.current.version)
        self.metrics.paused.labels(factory).set(1 if self.paused else 0)

    def close(self) -> None:
        """Write the predictions still queued. Safe to call twice."""
        if self.logger is not None:
            self.logger.close()

    # -- reading what is served --------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [self.factory]

    def deployment(self, name: str, version: str | None = None) -> Deployment:
        """The deployment answering for model ``name`` (and ``version``, when the path names one)."""
        dep = self.current
        if name != self.factory:
            raise ModelNotFound(f"model {name!r} is not served here; served models: {self.names}")
        if version is not None and version != str(dep.version):
            raise ModelNotFound(
                f"model {name!r} has no loaded version {version!r}; loaded versions: [{str(dep.version)!r}]"
            )
        return dep

    def ready(self) -> bool:
        return self.paused is None

    def check_serving(self) -> None:
        if self.paused is not None:
            raise Unavailable(
                f"serving of {self.factory!r} is paused by an operator ({self.paused}); predictions resume after "
                "POST /admin/resume"
            )

    # -- predicting --------------------------------------------------------------------------------

    def predict(self, dep: Deployment, frame: pd.DataFrame, rows: list[dict[str, Any]]) -> Answer:
        predictions, probabilities = dep.predict(frame)
        request_id = uuid.uuid4().hex
        self.metrics.predicted(dep.factory, str(dep.version), dep.task, predictions)
        if self.logger is not None:
            now = datetime.now(timezone.utc)
            log_rows = []
            for i, (feats, pred) in enumerate(zip(rows, predictions, strict=True)):
                output: dict[str, Any] = {"prediction": pred}
                if probabilities is not None:
                    output["probabilities"] = probabilities[i]
                log_rows.append(
                    {
                        "factory_id": dep.factory_id,
                        "version": dep.version,
                        "request_id": request_id,
                        "row": i,
                        "created_at": now,
                        "features": feats,
                        "output": output,
                    }
                )
            self.logger.submit(log_rows)
        return Answer(dep, request_id, predictions, probabilities)

    # -- feedback ----------------------------------------------------------------------------------

    def feedback(self, body: Any) -> dict[str, Any]:
        """Store the true label of a logged request (``{"request_id", "label", "row"?}``)."""
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
        dep = self.current
        if dep.task == "regression":
            if type(label) not in (int, float):
                raise InputError(f"label: expected a number (regression model), got {label!r:.60}", "label")
        elif not any(type(label) is type(c) and label == c for c in dep.classes):
            raise InputError(f"label: {label!r:.60} is not one of the model's classes {list(dep.classes)}", "label")
        if self.logger is not None:
            self.logger.flush()  # the request's rows may still be in the queue
        try:
            updated = self.store.add_feedback(self.factory_id, request_id, label, row=row)
        except NotFoundError:
            which = f"row {row} of request" if row is not None else "request"
            raise ModelNotFound(
                f"no logged prediction for {which} {request_id!r} of {self.factory!r}; fix: use a request_id "
                "returned by /v1/models/{name}/predict or /v2/models/{name}/infer"
            ) from None
        return {"request_id": request_id, "updated": updated}

    # -- operator actions --------------------------------------------------------------------------

    def _paused_in_store(self) -> str | None:
        last = self.store.list_events(factory_id=self.factory_id, kinds=("serving_paused", "serving_resumed"), limit=1)
        return last[0].reason if last and last[0].kind == "serving_paused" else None

    def _swap(self, new: Deployment) -> None:
        self.current = new  # the one write a request can observe
        self.metrics.served.labels(self.factory, CHAMPION).set(new.version)
        self.metrics.swaps.labels(self.factory).inc()

    def promote(self, ref: int | str, reason: str) -> dict[str, Any]:
        """Load ``ref`` (a version number or an alias), point ``champion`` at it, then serve it."""
        with self._admin:
            before = self.current.version
            try:
                new = load_deployment(self.registry, self.factory, ref)
            except NotFoundError as err:
                raise ModelNotFound(str(err)) from None
            if new.version != before or self._champion_alias() != new.version:
                self.registry.set_alias(
                    self.factory, CHAMPION, new.version, reason=f"promoted to v{new.version} by an operator: {reason}"
                )
            if new.version != before:
                self._swap(new)
            return {"model": self.factory, "version": new.version, "previous": before, "changed": new.version != before}

    def rollback(self, reason: str) -> dict[str, Any]:
        """Point ``champion`` back at the version that held it before the current one, and serve that."""
        with self._admin:
            before = self.current.version
            target = self.rollback_target()
            new = load_deployment(self.registry, self.factory, target)
            self.registry.set_alias(
                self.factory,
                CHAMPION,
                target,
                reason=f"rolled back from v{before} to v{target} by an operator: {reason}",
            )
            self._swap(new)
            return {"model": self.factory, "version": target, "previous": before, "changed": True}

    def _champion_alias(self) -> int | None:
        try:
            return self.registry.get(self.factory, CHAMPION).version
        except NotFoundError:
            return None

    def rollback_target(self) -> int:
        """The champion before the current one.

        The ``alias_set`` events of ``champion`` are replayed as a stack: a move to a new version pushes it,
        a move back to the version under the top pops the top (that is what a rollback is). When the log
        has no earlier champion, the current version's lineage parents are used.
        """
        stack: list[int] = []
        for e in self.store.list_events(factory_id=self.factory_id, kinds=("alias_set",)):
            if e.data.get("alias") != CHAMPION:
                continue
            version, previous = e.data.get("version"), e.data.get("previous")
            if not stack and isinstance(previous, int):
                stack.append(previous)
            if len(stack) >= 2 and stack[-2] == version:
                stack.pop()
            elif not stack or stack[-1] != version:
                stack.append(version)
        current = self.current.version
        if stack and stack[-1] == current and len(stack) >= 2:
            return stack[-2]
        parents = self.current.record.lineage.get("parents") or []
        for p in reversed(parents if isinstance(parents, list) else [parents]):
            if isinstance(p, int) and not isinstance(p, bool) and p != current:
                return p
        raise Conflict(
            f"{self.factory!r} v{current} has no earlier champion to roll back to (no earlier champion in the "
            "event log, no lineage parent); fix: promote a version by number"
        )

    def pause(self, reason: str) -> dict[str, Any]:
        with self._admin:
            self.store.append_event(
                kind="serving_paused",
                reason=reason,
                factory_id=self.factory_id,
                data={"version": self.current.version},
            )
            self.paused = reason
            self.metrics.paused.labels(self.factory).set(1)
            return {"model": self.factory, "paused": True, "reason": reason}

    def resume(self, reason: str) -> dict[str, Any]:
        with self._admin:
            self.store.append_event(
                kind="serving_resumed",
                reason=reason,
                factory_id=self.factory_id,
                data={"version": self.current.version},
            )
            self.paused = None
            self.metrics.paused.labels(self.factory).set(0)
            return {"model": self.factory, "paused": False, "reason": reason}

    def status(self) -> dict[str, Any]:
        dep = self.current
        return {
            "model": self.factory,
            "version": dep.version,
            "trainer": dep.record.trainer,
            "paused": self.paused is not None,
            "paused_reason": self.paused,
        }


def reason_of(body: Mapping[str, Any], default: str) -> str:
    reason = body.get("reason", default)
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("reason: expected a non-empty string saying why", "reason")
    return reason.strip()[:1000]
