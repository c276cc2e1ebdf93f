"""What the server does, without HTTP: the models it serves, routing, predictions, feedback, live figures,
the promotion decision and operator actions.

What is served is one immutable :class:`Routing` held in ONE attribute (``routing``). A request reads that
attribute once and uses what it got to the end, so a swap (promote, rollback, a decision, a hot reload)
never mixes two models in one answer and never makes a request wait: a new model is loaded and checked
completely before the attribute is replaced, and requests already running finish on the old one.

Hot reload: a watcher thread polls the store's aliases every ``poll_interval_s`` (default 1 s; one small
query). When ``champion`` or ``challenger`` points somewhere new (a `darkfab run` in another process, an
operator, a Registry call), the version is loaded fully, then the routing is swapped. A version that fails
to load is logged and skipped until its alias moves again; the old routing keeps serving meanwhile.

Contest: with a challenger and ``deploy.mode`` canary or shadow, once the challenger has answered (canary)
or shadowed (shadow) ``deploy.min_requests`` requests, :func:`judge` compares it with the champion on the
figures taken since the pair met; the service then promotes it (``champion`` moves to it, ``challenger`` is
deleted) or rolls it back (``challenger`` is deleted), in ONE store transaction with the decision event
(``challenger_promoted`` / ``challenger_rolled_back``, reason stating the figures, data holding them),
guarded so that nothing is written when another process moved the aliases first.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import DarkfabError, NotFoundError
from ..registry import Registry
from ..spec import DeploySpec, spec_from_dict
from ..store import Store
from ._decide import DEFAULT_LATENCY_FLOOR_MS, judge
from ._deployment import CHALLENGER, CHAMPION, OUTPUTS, Answer, Deployment, _class_datatype, load_deployment
from ._errors import BadRequest, Conflict, InputError, ModelFailed, ModelNotFound, OutOfRange, Unavailable
from ._live import LiveBook, LiveFigures
from ._log import PredictionLogger
from ._metrics import DriftCollector, ServeMetrics
from ._router import Route, Routing, ShadowJob, ShadowWorker, Watcher, choose

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "OUTPUTS",
    "PROMOTED",
    "ROLLED_BACK",
    "Answer",
    "Deployment",
    "ModelService",
    "_class_datatype",
    "load_deployment",
    "reason_of",
]

log = logging.getLogger("darkfab.serve")

PROMOTED = "challenger_promoted"
ROLLED_BACK = "challenger_rolled_back"
MODEL_FAILED = "prediction_failed"
FAILURE_EVENTS = 60  # model failures recorded as events per minute at most (the rest are counted)
FAILURE_ROWS = 20  # rows of a failed request kept in its event
FEEDBACK_CONFLICT = "feedback_conflict"
WAL_FOLDER = "prediction-wal"  # beside the store's artifacts: the write-ahead prediction log (see _log)


class EventBudget:
    """At most ``per_minute`` events of a kind a client can cause; the rest are counted, not written."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.skipped = 0

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > 60.0:
                self._times.popleft()
            if len(self._times) >= self.per_minute:
                self.skipped += 1
                return False
            self._times.append(now)
            return True

    def skipped_since(self) -> int:
        with self._lock:
            n, self.skipped = self.skipped, 0
            return n


def deploy_of(store: Store, factory: str) -> DeploySpec:
    """The deploy section of the factory's stored spec; the defaults (direct) when it cannot be read."""
    try:
        return spec_from_dict(store.get_factory(factory).spec, f"the stored spec of {factory!r}").deploy
    except DarkfabError as err:
        log.warning("cannot read the deploy section of %r (%s); serving the champion directly", factory, err)
        return DeploySpec()


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
        self._events = EventBudget(FAILURE_EVENTS)
        self._skipped: dict[str, int] = {}  # alias -> version that failed to load (not retried until it moves)
        champion = load_deployment(self.registry, factory, CHAMPION)
        self.factory_id = champion.factory_id
        self.routing = Routing(champion, None, self.deploy.mode, self.deploy.share)
        self.book.restart({champion.version: champion.task})
        self.paused: str | None = self._paused_in_store()
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
        self.watcher = Watcher(self.tick, poll_interval_s)
        self.metrics.add_live(self.factory, self.live_rows)
        self.metrics.registry.register(DriftCollector(self.factory, lambda: store.last_monitor_window(self.factory_id)))
        self.metrics.paused.labels(factory).set(1 if self.paused else 0)
        self._show(self.routing)
        with self._admin:
            self._sync()  # a challenger already registered is loaded now, like the champion

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
    def current(self) -> Deployment:
        """The champion being served."""
        return self.routing.champion

    @property
    def names(self) -> list[str]:
        return [self.factory]

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
        routing = self.routing
        return routing.champion if version is None else self._pinned(routing, name, version).deployment

    def route(self, name: str, version: str | None = None) -> Route:
        """Where a prediction request goes (read once: a swap cannot change it under the request)."""
        self._check_name(name)
        routing = self.routing
        return choose(routing, self._rng.random) if version is None else self._pinned(routing, name, version)

    def ready(self) -> bool:
        return self.paused is None

    def check_serving(self) -> None:
        if self.paused is not None:
            raise Unavailable(
                f"serving of {self.factory!r} is paused by an operator ({self.paused}); predictions resume after "
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
        routing = self.routing
        if routing.challenger is not None and dep.version == routing.challenger.version:
            if requests >= self.deploy.min_requests:
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
                kind=MODEL_FAILED,
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
                raise ModelFailed(
                    f"version {dep.version} of {dep.factory!r} failed on this input (request {request_id}); the "
                    f"failure is recorded{f' as event {event}' if event else ''} with the rows"
                ) from None
            frame = self._frame_for(route.champion, dep.schema, frame, rows)
            dep, role = route.champion, CHAMPION
            try:
                _, predictions, probabilities, _ = self._timed(dep, frame)
            except Exception as again:
                event = self._model_failed(dep, role, request_id, rows, again)
                raise ModelFailed(
                    f"version {dep.version} of {dep.factory!r} failed on this input (request {request_id}); the "
                    f"failure is recorded{f' as event {event}' if event else ''} with the rows"
                ) from None
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
            held = [{"row": r, "label": held} for r, held in done.conflicts[:FAILURE_ROWS]]
            if self._events.take():
                self.store.append_event(
                    kind=FEEDBACK_CONFLICT,
                    reason=f"feedback {label!r:.60} for request {request_id} {'refused' if write_once else 'replaced'}"
                    f" {len(done.conflicts)} earlier different label(s) (deploy.feedback: {self.deploy.feedback})",
                    factory_id=self.factory_id,
                    data={"request_id": request_id, "row": row, "label": label, "held": held},
                )
            if write_once:
                raise Conflict(
                    f"request {request_id!r} already has a different label ({done.conflicts[0][1]!r:.60} for row "
                    f"{done.conflicts[0][0]}); feedback is write-once (deploy.feedback: write_once), so nothing was "
                    "changed; fix: send the label once, or set deploy.feedback: last_wins in the factory file",
                    "label",
                )
        updated = done.labelled
        routing = self.routing
        if routing.challenger is not None and routing.mode == "shadow":
            self.shadow.drain(5.0)  # the challenger's shadow answer for these rows may still be queued
        self._labelled(request_id, row)
        return {"request_id": request_id, "updated": updated}

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

    # -- hot reload and the contest ----------------------------------------------------------------

    def tick(self) -> None:
        """One round of the watcher: pick up alias moves made elsewhere, then decide a ripe contest."""
        with self._admin:
            self._sync()
            self._decide()

    def _load(self, alias: str, version: int) -> Deployment | None:
        if self._skipped.get(alias) == version:
            return None
        try:
            return load_deployment(self.registry, self.factory, version)
        except Exception as err:  # a damaged artifact must not stop the server: keep serving the old one
            self._skipped[alias] = version
            self.metrics.reload_errors.labels(self.factory).inc()
            log.error("cannot load %s v%s of %r, keeping the current routing: %s", alias, version, self.factory, err)
            return None

    def _sync(self) -> None:
        held = self.store.aliases(self.factory_id)
        routing = self.routing
        want_champion = held.get(CHAMPION, routing.champion.version)  # a deleted champion alias: keep serving
        want_challenger = held.get(CHALLENGER)
        if self.deploy.mode == "direct" or want_challenger == want_champion:
            want_challenger = None
        have_challenger = routing.challenger.version if routing.challenger is not None else None
        if want_champion == routing.champion.version and want_challenger == have_challenger:
            return
        loaded = {routing.champion.version: routing.champion}
        if routing.challenger is not None:
            loaded[routing.challenger.version] = routing.challenger
        champion = loaded.get(want_champion) or self._load(CHAMPION, want_champion)
        if champion is None:
            champion = routing.champion
        challenger = None
        if want_challenger is not None:
            challenger = loaded.get(want_challenger) or self._load(CHALLENGER, want_challenger)
        if champion.version == routing.champion.version and (
            (challenger.version if challenger is not None else None) == have_challenger
        ):
            return
        log.info(
            "routing of %r: champion v%s, challenger %s (aliases moved in the store)",
            self.factory,
            champion.version,
            f"v{challenger.version}" if challenger is not None else "none",
        )
        self._set_routing(champion, challenger)

    def _set_routing(self, champion: Deployment, challenger: Deployment | None) -> None:
        """Swap what is served (the one write a request can observe); figures restart for the new pair."""
        old = self.routing
        held = self.store.aliases(self.factory_id)
        champion = self._labelled_as(champion, held)
        challenger = self._labelled_as(challenger, held) if challenger is not None else None
        new = Routing(champion, challenger, self.deploy.mode, self.deploy.share)
        self.routing = new
        if new.versions() != old.versions():
            pair = {champion.version: champion.task}
            if challenger is not None:
                pair[challenger.version] = challenger.task
            self.book.restart(pair)
            self._skipped.clear()
        if champion.version != old.champion.version:
            self.metrics.swaps.labels(self.factory).inc()
        self._show(new)

    @staticmethod
    def _labelled_as(dep: Deployment, held: dict[str, int]) -> Deployment:
        """``dep`` with its record's aliases as they are now (its metadata shows them)."""
        aliases = tuple(sorted(a for a, v in held.items() if v == dep.version))
        if dep.record.aliases == aliases:
            return dep
        return replace(dep, record=replace(dep.record, aliases=aliases))

    def _show(self, routing: Routing) -> None:
        self.metrics.served.labels(self.factory, CHAMPION).set(routing.champion.version)
        if routing.challenger is not None:
            self.metrics.served.labels(self.factory, CHALLENGER).set(routing.challenger.version)
        else:
            try:
                self.metrics.served.remove(self.factory, CHALLENGER)
            except KeyError:
                pass
        share = routing.share if routing.challenger is not None and routing.mode == "canary" else 0.0
        self.metrics.share.labels(self.factory).set(share)

    def _decide(self) -> None:
        routing = self.routing
        champion, challenger = routing.champion, routing.challenger
        if challenger is None or routing.mode == "direct":
            return
        figures = self.book.get(challenger.version)
        if figures is None or figures.requests < self.deploy.min_requests:
            return
        seen = {"champion": self.book.of(champion.version, champion.task).snapshot(), "challenger": figures.snapshot()}
        verdict = judge(self.deploy, seen["champion"], seen["challenger"], latency_floor_ms=self.latency_floor_ms)
        data = {
            "by": "server",
            "mode": routing.mode,
            "champion": champion.version,
            "challenger": challenger.version,
            "figures": seen,
            "checks": verdict.checks,
            "limits": self.deploy.model_dump(mode="json"),
            "latency_floor_ms": self.latency_floor_ms,
        }
        done = self.store.change_aliases(
            self.factory_id,
            reason=f"{routing.mode}: {verdict.reason}",
            expect={CHAMPION: champion.version, CHALLENGER: challenger.version},
            move={CHAMPION: challenger.version} if verdict.promote else None,
            delete=(CHALLENGER,),
            kind=PROMOTED if verdict.promote else ROLLED_BACK,
            data=data,
        )
        if not done:
            log.info("contest of %r not recorded: its aliases moved meanwhile; re-reading them", self.factory)
            self._sync()
            return
        log.info("%r: %s", self.factory, verdict.reason)
        self.metrics.decisions.labels(self.factory, "promoted" if verdict.promote else "rolled_back").inc()
        self._set_routing(challenger if verdict.promote else champion, None)

    # -- operator actions --------------------------------------------------------------------------

    def _paused_in_store(self) -> str | None:
        last = self.store.list_events(factory_id=self.factory_id, kinds=("serving_paused", "serving_resumed"), limit=1)
        return last[0].reason if last and last[0].kind == "serving_paused" else None

    def promote(self, ref: int | str, reason: str) -> dict[str, Any]:
        """Load ``ref`` (a version number or an alias such as ``challenger``), point ``champion`` at it, serve it.

        Promoting the challenger being routed (canary, shadow) ends its contest: the ``challenger`` alias is
        deleted in the same transaction. With deploy.mode direct the server leaves ``challenger`` alone.
        """
        with self._admin:
            self._sync()
            routing = self.routing
            before = routing.champion.version
            try:
                target = self.registry.get(self.factory, ref).version
            except NotFoundError as err:
                raise ModelNotFound(str(err)) from None
            loaded = {d.version: d for d in (routing.champion, routing.challenger) if d is not None}
            try:
                new = loaded.get(target) or load_deployment(self.registry, self.factory, target)
            except NotFoundError as err:
                raise ModelNotFound(str(err)) from None
            held = self.store.aliases(self.factory_id)
            routed = routing.challenger is not None and routing.challenger.version == target
            drop = (CHALLENGER,) if routed and held.get(CHALLENGER) == target else ()
            if held.get(CHAMPION) != target or drop:
                self.store.change_aliases(
                    self.factory_id,
                    reason=f"promoted to v{target} by an operator: {reason}",
                    move={CHAMPION: target},
                    delete=drop,
                    kind=PROMOTED if drop else None,
                    data={"by": "operator", "champion": before, "challenger": target, "figures": self._figures()},
                )
            challenger = routing.challenger if routing.challenger is not None and not drop else None
            if challenger is not None and challenger.version == target:
                challenger = None
            self._set_routing(new, challenger)
            return {"model": self.factory, "version": target, "previous": before, "changed": target != before}

    def rollback(self, reason: str) -> dict[str, Any]:
        """Drop the challenger when one is being routed; else point ``champion`` back at the one before."""
        with self._admin:
            self._sync()
            routing = self.routing
            if routing.challenger is not None:
                return self._drop_challenger(routing, routing.challenger, reason)
            before = routing.champion.version
            target = self.rollback_target()
            new = load_deployment(self.registry, self.factory, target)
            self.registry.set_alias(
                self.factory,
                CHAMPION,
                target,
                reason=f"rolled back from v{before} to v{target} by an operator: {reason}",
            )
            self._set_routing(new, None)
            return {"model": self.factory, "version": target, "previous": before, "changed": True}

    def _drop_challenger(self, routing: Routing, challenger: Deployment, reason: str) -> dict[str, Any]:
        dropped = challenger.version
        self.store.change_aliases(
            self.factory_id,
            reason=f"challenger v{dropped} dropped by an operator: {reason}",
            delete=(CHALLENGER,),
            kind=ROLLED_BACK,
            data={
                "by": "operator",
                "mode": routing.mode,
                "champion": routing.champion.version,
                "challenger": dropped,
                "figures": self._figures(),
            },
        )
        self._set_routing(routing.champion, None)
        version = routing.champion.version
        return {"model": self.factory, "version": version, "previous": version, "changed": True, "dropped": dropped}

    def _figures(self) -> dict[str, Any]:
        routing = self.routing
        snaps = self.book.snapshot()
        out = {CHAMPION: snaps.get(routing.champion.version)}
        if routing.challenger is not None:
            out[CHALLENGER] = snaps.get(routing.challenger.version)
        return out

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
            if not isinstance(version, int):  # Store._move_alias always records the int version it set
                continue
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

        last = self.store.list_events(factory_id=self.factory_id, kinds=(PROMOTED, ROLLED_BACK), limit=1)
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
