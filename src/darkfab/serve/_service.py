"""What the server does, without HTTP: the models it serves, predictions, and the parts behind them.

:class:`ModelService` predicts (routing each request by the one :class:`Routing` attribute of
:class:`Served`, see ``_served``), and puts together the other parts, each in its own module:

* ``_served``: what is served and hot reload (the watcher thread picks up alias moves made elsewhere);
* ``_contest``: the canary/shadow contest, judged by the pure :func:`judge` on frozen figures;
* ``_feedback``: labels of logged predictions, fed to the live quality;
* ``_operator``: promote, rollback, pause, resume, each recorded with its reason.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

import pandas as pd

from ..errors import DarkfabError
from ..events import EventKind
from ..registry import Registry
from ..spec import DeploySpec
from ..store import Store, stored_spec
from ._budget import EventBudget
from ._contest import Contest
from ._context import ServeContext
from ._decide import DEFAULT_LATENCY_FLOOR_MS
from ._deployment import CHALLENGER, CHAMPION, OUTPUTS, Answer, Deployment, _class_datatype, load_deployment
from ._errors import BadRequest, InputError, ModelFailed, ModelNotFound, OutOfRange, Unavailable
from ._feedback import FeedbackDesk
from ._live import LiveBook, LiveFigures
from ._log import PredictionLogger
from ._metrics import DriftCollector, ServeMetrics
from ._operator import Operator
from ._router import Route, Routing, ShadowJob, ShadowWorker, Watcher, choose
from ._served import Served

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "OUTPUTS",
    "Answer",
    "Deployment",
    "ModelService",
    "_class_datatype",
    "load_deployment",
    "reason_of",
]

log = logging.getLogger("darkfab.serve")

FAILURE_EVENTS = 60  # model failures recorded as events per minute at most (the rest are counted)
FAILURE_ROWS = 20  # rows of a failed request kept in its event
WAL_FOLDER = "prediction-wal"  # beside the store's artifacts: the write-ahead prediction log (see _log)


def deploy_of(store: Store, factory: str) -> DeploySpec:
    """The deploy section of the factory's stored spec; the defaults (direct) when it cannot be read."""
    try:
        return stored_spec(store, factory).deploy
    except DarkfabError as err:
        log.warning("cannot read the deploy section of %r (%s); serving the champion directly", factory, err)
        return DeploySpec()


def _log_rows(
    dep: Deployment, request_id: str, rows: list[dict[str, Any]], predictions: list[Any], probabilities: Any
) -> list[dict[str, Any]]:
    """The prediction log's rows of one answered request."""
    now = datetime.now(timezone.utc)
    out = []
    for i, (feats, pred) in enumerate(zip(rows, predictions, strict=True)):
        output: dict[str, Any] = {"prediction": pred}
        if probabilities is not None:
            output["probabilities"] = probabilities[i]
        out.append(
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
    return out


class ServiceOptions(TypedDict, total=False):
    """The options of :class:`ModelService` that :func:`darkfab.serve.create_app` passes through as given
    (their defaults and meaning: ``ModelService.__init__``)."""

    log_predictions: bool
    flush_interval_s: float
    flush_rows: int
    deploy: DeploySpec | None
    poll_interval_s: float
    seed: int | None
    latency_floor_ms: float
    shadow_capacity: int
    on_aliases_moved: Callable[[str], None] | None


class ModelService:
    """Serves the ``champion`` of one factory, and a ``challenger`` by canary or shadow when deploy asks.

    ``deploy`` overrides the factory's stored deploy section; ``seed`` seeds the canary draw.
    Operator actions and routing decisions are recorded in the store with their reasons.
    """

    def __init__(
        self,
        *,
        store: Store,
        factory: str,
        metrics: ServeMetrics | None = None,
        log_predictions: bool = True,
        flush_interval_s: float = 0.2,
        flush_rows: int = 500,
        deploy: DeploySpec | None = None,
        poll_interval_s: float = 1.0,
        seed: int | None = None,
        latency_floor_ms: float = DEFAULT_LATENCY_FLOOR_MS,
        shadow_capacity: int = 1000,
        write_ahead: bool = True,
        on_aliases_moved: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.registry = Registry(store)
        self.factory = factory
        self.metrics = metrics or ServeMetrics()
        self.deploy = deploy if deploy is not None else deploy_of(store, factory)
        self.latency_floor_ms = latency_floor_ms
        self.book = LiveBook()
        self._rng = random.Random(seed)
        self._admin = threading.RLock()
        self._failures = EventBudget(FAILURE_EVENTS)
        champion = load_deployment(self.registry, factory, CHAMPION)
        self.factory_id = champion.factory_id
        ctx = ServeContext(
            store, self.registry, factory, self.factory_id, self.deploy, self.book, self.metrics, on_aliases_moved
        )
        self.served = Served(ctx, champion)
        self.operator = Operator(ctx, served=self.served, lock=self._admin)
        self.contest = Contest(ctx, latency_floor_ms=latency_floor_ms)
        self.logger = (
            PredictionLogger(
                store,
                self.metrics,
                interval_s=flush_interval_s,
                batch_rows=flush_rows,
                wal_dir=Path(store.artifact_root).parent / WAL_FOLDER if write_ahead else None,
            )
            if log_predictions
            else None
        )
        self.shadow = ShadowWorker(self._shadow_work, capacity=shadow_capacity, on_drop=self._shadow_dropped)
        self.desk = FeedbackDesk(ctx, logger=self.logger, shadow=self.shadow, routing=lambda: self.served.routing)
        self.watcher = Watcher(self.tick, poll_interval_s)
        self.metrics.add_live(self.factory, self.live_rows)
        self.metrics.registry.register(DriftCollector(self.factory, lambda: store.last_monitor_window(self.factory_id)))
        with self._admin:
            self.served.sync()  # a challenger already registered is loaded now, like the champion

    def start(self) -> None:
        """Start the background threads (prediction log, shadow worker, watcher)."""
        if self.logger is not None:
            self.logger.start()
        self.shadow.start()
        self.watcher.start()

    def close(self) -> None:
        """Stop the watcher and the shadow worker, write the predictions still queued. Safe to call twice."""
        self.watcher.close()
        self.shadow.close()
        if self.logger is not None:
            self.logger.close()

    # -- reading what is served --------------------------------------------------------------------

    @property
    def routing(self) -> Routing:
        """What is served now (read it once per request: a swap replaces it, never changes it)."""
        return self.served.routing

    @property
    def current(self) -> Deployment:
        """The champion being served."""
        return self.served.routing.champion

    @property
    def names(self) -> list[str]:
        return [self.factory]

    @property
    def paused(self) -> str | None:
        """Why an operator paused serving; None while serving."""
        return self.operator.paused

    def _check_name(self, name: str) -> None:
        if name != self.factory:
            raise ModelNotFound(f"model {name!r} is not served here; served models: {self.names}")

    def _pinned(self, routing: Routing, name: str, version: str) -> Route:
        loaded = [(routing.champion, CHAMPION)]
        if routing.challenger is not None:
            loaded.append((routing.challenger, CHALLENGER))
        for dep, role in loaded:
            if version == str(dep.version):
                return Route(dep, role, routing.champion, pinned=True)
        raise ModelNotFound(
            f"model {name!r} has no loaded version {version!r}; loaded versions: {[str(d.version) for d, _ in loaded]}"
        )

    def deployment(self, name: str, version: str | None = None) -> Deployment:
        """The deployment named by a metadata path: the champion, or a loaded version by number."""
        self._check_name(name)
        routing = self.served.routing
        return routing.champion if version is None else self._pinned(routing, name, version).deployment

    def route(self, name: str, version: str | None = None) -> Route:
        """Where a prediction request goes (read once: a swap cannot change it under the request)."""
        self._check_name(name)
        routing = self.served.routing
        return choose(routing, self._rng.random) if version is None else self._pinned(routing, name, version)

    def ready(self) -> bool:
        return self.operator.paused is None

    def check_serving(self) -> None:
        paused = self.operator.paused
        if paused is not None:
            raise Unavailable(
                f"serving of {self.factory!r} is paused by an operator ({paused}); predictions resume after "
                "POST /admin/resume"
            )

    # -- predicting --------------------------------------------------------------------------------

    def _timed(self, dep: Deployment, frame: pd.DataFrame) -> tuple[LiveFigures, list[Any], Any, float]:
        figures = self.book.of(dep.version, dep.task)
        start = time.perf_counter()
        try:
            predictions, probabilities = dep.predict(frame)
        except Exception:
            self._counted(dep, figures.failed())
            raise
        seconds = time.perf_counter() - start
        self._counted(dep, figures.answered(seconds, predictions))
        return figures, predictions, probabilities, seconds

    def _counted(self, dep: Deployment, requests: int) -> None:
        if self.contest.ripe(self.served.routing, dep.version, requests):
            self.watcher.wake()  # decide now rather than at the next poll

    @staticmethod
    def _frame_for(dep: Deployment, schema: Any, frame: pd.DataFrame, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return frame if dep.schema == schema else dep.schema.from_records(rows)[0]

    def _model_failed(
        self, dep: Deployment, role: str, request_id: str, rows: list[dict[str, Any]], err: Exception
    ) -> int | None:
        """Record a model's failure on rows that passed the input checks: an event holding the rows (at most
        ``FAILURE_EVENTS`` a minute, the others counted in the next one). Returns the event id, if written."""
        what = f"{type(err).__name__}: {err}"[:500]
        log.error("model v%s (%s) failed on request %s: %s", dep.version, role, request_id, what)
        log.debug("the model's traceback", exc_info=err)
        if not self._failures.take():
            return None
        unrecorded = self._failures.skipped_since()
        try:
            event = self.store.append_event(
                kind=EventKind.PREDICTION_FAILED,
                reason=f"version {dep.version} ({role}) raised {what} on a request of {len(rows)} row(s) that "
                "passed the input checks",
                factory_id=self.factory_id,
                data={
                    "version": dep.version,
                    "role": role,
                    "request_id": request_id,
                    "error": what,
                    "n_rows": len(rows),
                    "rows": rows[:FAILURE_ROWS],
                    "unrecorded_before": unrecorded,
                },
            )
        except DarkfabError as store_err:  # the answer (a 500, or the champion's) must not depend on the store
            log.warning("could not record the model failure of request %s: %s", request_id, store_err)
            return None
        return event.id

    @staticmethod
    def _failed(dep: Deployment, request_id: str, event: int | None) -> ModelFailed:
        return ModelFailed(
            f"version {dep.version} of {dep.factory!r} failed on this input (request {request_id}); the "
            f"failure is recorded{f' as event {event}' if event else ''} with the rows"
        )

    def predict(self, route: Route, frame: pd.DataFrame, rows: list[dict[str, Any]]) -> Answer:
        """Predict ``rows`` (already checked against ``route.deployment``'s schema) where the route says.

        The rows passed the input checks, so whatever the model raises is the model's failure: it is counted
        in the version's live figures and recorded with the rows (a ``prediction_failed`` event), and the
        client gets :class:`ModelFailed` (500). A canary challenger that raises is counted the same way, and
        the champion answers the request instead: a bad challenger costs the client nothing.
        """
        dep, role = route.deployment, route.role
        request_id = uuid.uuid4().hex
        try:
            _, predictions, probabilities, _ = self._timed(dep, frame)
        except Exception as err:
            event = self._model_failed(dep, role, request_id, rows, err)
            if role != CHALLENGER or route.pinned:
                raise self._failed(dep, request_id, event) from None
            frame = self._frame_for(route.champion, dep.schema, frame, rows)
            dep, role = route.champion, CHAMPION
            try:
                _, predictions, probabilities, _ = self._timed(dep, frame)
            except Exception as again:
                event = self._model_failed(dep, role, request_id, rows, again)
                raise self._failed(dep, request_id, event) from None
        self.metrics.predicted(dep.factory, str(dep.version), dep.task, predictions)
        if self.logger is not None:
            self.logger.submit(_log_rows(dep, request_id, rows, predictions, probabilities))
        if route.shadow is not None:
            self.shadow.submit(ShadowJob(route.shadow, request_id, frame, rows, dep.schema))
        return Answer(dep, request_id, predictions, probabilities, role)

    def _shadow_work(self, job: ShadowJob) -> None:
        dep = job.deployment
        challenger = self.routing.challenger
        if challenger is None or challenger.version != dep.version:
            return  # the contest ended while the job waited
        try:
            frame = self._frame_for(dep, job.schema, job.frame, job.rows)
        except OutOfRange:  # absurd for the challenger's training range: the client's error, not the model's
            return
        except InputError:  # the challenger's schema refuses rows the champion took: its failure
            self._counted(dep, self.book.of(dep.version, dep.task).failed())
            return
        try:
            _, predictions, _, _ = self._timed(dep, frame)
        except Exception as err:
            self._model_failed(dep, "shadow", job.request_id, job.rows, err)
            return
        self.book.remember_shadow(job.request_id, dep.version, predictions)

    def _shadow_dropped(self) -> None:
        self.metrics.shadow_dropped.labels(self.factory).inc()

    def drain_shadow(self, timeout: float = 10.0) -> bool:
        """Wait until the shadow predictions queued so far are done (for tests and orderly shutdowns)."""
        return self.shadow.drain(timeout)

    # -- the parts behind the admin API, the watcher and feedback ------------------------------------

    def feedback(self, body: Any) -> dict[str, Any]:
        """Store the true label of a logged request (``{"request_id", "label", "row"?}``); see ``_feedback``."""
        return self.desk.feedback(body)

    def tick(self) -> None:
        """One round of the watcher: pick up alias moves made elsewhere, then decide a ripe contest."""
        with self._admin:
            self.served.sync()
            outcome = self.contest.decide(self.served.routing)
            if outcome is None:
                return
            if outcome.champion is None:  # the aliases moved meanwhile: serve what they name now
                self.served.sync()
                return
            self.served.swap(outcome.champion, None)

    def promote(self, ref: int | str, reason: str) -> dict[str, Any]:
        """Point ``champion`` at ``ref`` (a version number or an alias) and serve it; see :class:`Operator`."""
        return self.operator.promote(ref, reason)

    def rollback(self, reason: str) -> dict[str, Any]:
        """Drop the routed challenger, else go back to the champion before; see :class:`Operator`."""
        return self.operator.rollback(reason)

    def rollback_target(self) -> int:
        """The champion before the current one."""
        return self.operator.rollback_target()

    def pause(self, reason: str) -> dict[str, Any]:
        return self.operator.pause(reason)

    def resume(self, reason: str) -> dict[str, Any]:
        return self.operator.resume(reason)

    def live_rows(self) -> list[tuple[str, dict[str, Any]]]:
        """(role, figures) of the versions being routed, for /metrics."""
        routing = self.routing
        snaps = self.book.snapshot()
        out = [(CHAMPION, snaps[routing.champion.version])] if routing.champion.version in snaps else []
        if routing.challenger is not None and routing.challenger.version in snaps:
            out.append((CHALLENGER, snaps[routing.challenger.version]))
        return out

    def routing_status(self) -> dict[str, Any]:
        """Routing state and live figures per version (what GET /v1/routing answers)."""
        routing = self.routing
        snaps = self.book.snapshot()

        def side(dep: Deployment | None) -> dict[str, Any] | None:
            if dep is None:
                return None
            return {"version": dep.version, "trainer": dep.record.trainer, "figures": snaps.get(dep.version)}

        last = self.store.list_events(
            factory_id=self.factory_id, kinds=(EventKind.CHALLENGER_PROMOTED, EventKind.CHALLENGER_ROLLED_BACK), limit=1
        )
        return {
            "model": self.factory,
            "mode": routing.mode,
            "share": routing.share if routing.mode == "canary" and routing.challenger is not None else 0.0,
            "champion": side(routing.champion),
            "challenger": side(routing.challenger),
            "min_requests": self.deploy.min_requests,
            "limits": self.deploy.model_dump(mode="json"),
            "last_decision": (
                {"kind": last[0].kind, "reason": last[0].reason, "at": last[0].created_at.isoformat()} if last else None
            ),
        }

    def status(self) -> dict[str, Any]:
        dep = self.current
        return {
            "model": self.factory,
            "version": dep.version,
            "trainer": dep.record.trainer,
            "paused": self.paused is not None,
            "paused_reason": self.paused,
            "routing": self.routing_status(),
        }


def reason_of(body: Mapping[str, Any], default: str) -> str:
    reason = body.get("reason", default)
    if not isinstance(reason, str) or not reason.strip():
        raise BadRequest("reason: expected a non-empty string saying why", "reason")
    return reason.strip()[:1000]
