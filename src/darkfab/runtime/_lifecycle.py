"""The lights-out loop: serve the champion, watch its live traffic, retrain when the world drifts.

:class:`Lifecycle` wires the parts together and owns no algorithm of its own:

* the model server (:func:`darkfab.serve.create_app`) runs under uvicorn on loopback in a background thread;
  it logs every prediction, takes feedback labels, routes a canary share to a ``challenger`` and promotes
  or rolls it back by live figures, and hot-reloads aliases moved in the store;
* a watcher thread calls :meth:`darkfab.monitor.Monitor.check` every ``check_every_s`` against the training
  data of the champion being served; a window that drifts or decays (and that the file lets retrain) starts
  a campaign when none is running, no contest is on, and the window was served by the current champion
  after the last change;
* a retrain writes the reference rows (the factory file's data source) plus every labelled live row into
  ``<store dir>/data/<factory>-campaign-<n>.parquet`` (``.csv`` in an install without the ``parquet`` extra), points the spec's ``data.source`` at it (same name:
  the factory's history warm-starts the proposer) and runs :meth:`darkfab.Factory.run` through the same
  gate; the winner becomes ``challenger`` (canary/shadow) or ``champion`` (direct) and the server picks it
  up by itself.

Every step is an event in the store (``lifecycle_*`` beside the campaign, gate, registry, monitor and
canary events), so :func:`timeline` rebuilds what happened and why from the store alone. Alerts (drift and
decay from the monitor; rollback, budget reached and campaign failed from here) go to the log and to
``monitor.webhook``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .._listen import listening_socket
from ..data import write_snapshot
from ..errors import DarkfabError, NotFoundError
from ..events import EventKind, StopReason
from ..monitor import Alerter, Monitor, WindowResult
from ..results import RunResult
from ..store import Pauses
from ._factory import Factory
from ._mirror import alias_mirror
from ._refs import build_monitor
from ._retrain import derived_spec, outcome, retraining_frame
from ._timeline import Step, last_event_id, timeline

log = logging.getLogger("darkfab.loop")

# -- the server thread ----------------------------------------------------------------------------------


class _ServerThread:
    """uvicorn on a socket bound here (port 0: a free port), in a daemon thread."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        self.sock = listening_socket(host, port)  # port 0: one the OS picks
        self.host = host
        self.port = int(self.sock.getsockname()[1])
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="darkfab-serve", daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DarkfabError(f"the model server did not start on {self.host}:{self.port}")
            time.sleep(0.02)

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout)
        self.sock.close()


# -- the lifecycle --------------------------------------------------------------------------------------


class Lifecycle:
    """Serve, watch and retrain one factory until stopped.

    Args:
        factory: the factory (its spec is the base: its data source is the reference data of every retrain).
        host, port: where the model server listens; port 0 picks a free port (see :attr:`port`).
        check_every_s: how often the watcher closes and tests monitor windows.
        retrain_trials, retrain_time: a smaller budget for retraining campaigns; the file's budget when absent.
        fresh_labels: labelled live rows, served since the triggering window opened, to wait for before a
            retrain (up to ``fresh_wait_s``), so the new campaign learns from the new world.
        cooldown_s: no retrain starts sooner than this after the previous one ended.
        poll_interval_s: how often the server re-reads aliases (hot reload and contest decisions).
        max_age_s: the monitor also closes windows whose oldest row is this old.
        seed: seeds the server's canary draw.
        on_step: called with each new :class:`Step` of the timeline, from the watcher thread.
    """

    def __init__(
        self,
        factory: Factory,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        check_every_s: float = 0.5,
        retrain_trials: int | None = None,
        retrain_time: str | float | None = None,
        fresh_labels: int = 0,
        fresh_wait_s: float = 120.0,
        cooldown_s: float = 0.0,
        poll_interval_s: float = 0.5,
        max_age_s: float | None = None,
        seed: int | None = None,
        on_step: Callable[[Step], None] | None = None,
        allow_hosts: Sequence[str] = (),
        feedback_token: str | None = None,
    ) -> None:
        if check_every_s <= 0 or fresh_labels < 0 or fresh_wait_s < 0 or cooldown_s < 0:
            raise ValueError(
                f"need check_every_s > 0 and fresh_labels, fresh_wait_s, cooldown_s >= 0; got {check_every_s=}, "
                f"{fresh_labels=}, {fresh_wait_s=}, {cooldown_s=}"
            )
        self.factory = factory
        self.base = factory.spec
        self.store = factory.store
        self.host = host
        self.requested_port = port
        self.check_every_s = check_every_s
        self.retrain_trials = retrain_trials
        self.retrain_time = retrain_time
        self.fresh_labels = fresh_labels
        self.fresh_wait_s = fresh_wait_s
        self.cooldown_s = cooldown_s
        self.poll_interval_s = poll_interval_s
        self.max_age_s = max_age_s
        self.seed = seed
        self.on_step = on_step
        self.allow_hosts = tuple(allow_hosts)
        self.feedback_token = feedback_token
        self.alerter = Alerter(self.base.monitor.webhook)
        self.results: list[RunResult] = []  # retraining campaigns, in order
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._server: _ServerThread | None = None
        self._watcher: threading.Thread | None = None
        self._retrainer: threading.Thread | None = None
        self._monitor: Monitor | None = None
        self._monitor_version: int | None = None
        self._quiet_after = 0  # prediction id: windows starting at or before it never trigger
        self._last_retrain_end = -float("inf")
        self._seen_event = 0  # the newest event handed to on_step
        self._seen_decision = 0  # the newest rollback alerted
        self._emit_lock = threading.Lock()
        self._factory_id: int | None = None
        self._app: Any = None

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self._server is not None else "not serving"
        return f"Lifecycle({self.base.name!r}, {where}, retrains={len(self.results)})"

    # -- starting and stopping ---------------------------------------------------------------------------

    @property
    def factory_id(self) -> int:
        if self._factory_id is None:
            self._factory_id = self.store.get_factory(self.base.name).id
        return self._factory_id

    @property
    def port(self) -> int:
        if self._server is None:
            raise DarkfabError("the lifecycle is not serving; call start() first")
        return self._server.port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def service(self) -> Any:
        """The running :class:`darkfab.serve.ModelService`."""
        if self._app is None:
            raise DarkfabError("the lifecycle is not serving; call start() first")
        return self._app.state.service

    @property
    def retraining(self) -> bool:
        return self._retrainer is not None and self._retrainer.is_alive()

    def start(self) -> Lifecycle:
        """Serve the champion (and a challenger) and start watching. NotFoundError when there is no champion."""
        from ..serve import create_app, host_allowlist

        fid = self.factory_id
        try:
            champion = self.store.get_model_version(fid, "champion")
        except NotFoundError:
            raise NotFoundError(
                f"factory {self.base.name!r} has no champion to serve yet; fix: run it until one passes the gate"
            ) from None
        self._seen_event = self._seen_decision = last_event_id(self.store)
        self._app = create_app(
            store=self.store,
            factory=self.base.name,
            poll_interval_s=self.poll_interval_s,
            seed=self.seed,
            allowed_hosts=host_allowlist(self.allow_hosts, bind=self.host),
            feedback_token=self.feedback_token,
            on_aliases_moved=alias_mirror(self.store, self.base.name),
        )
        self._server = _ServerThread(self._app, self.host, self.requested_port)
        self._server.start()
        self._quiet_after = self._newest_prediction()
        self._event(
            EventKind.LIFECYCLE_SERVING_STARTED,
            f"serving v{champion.version} at {self.url}; watching windows of {self.base.monitor.window} rows "
            f"every {self.check_every_s:g}s",
            {"url": self.url, "port": self.port, "version": champion.version},
        )
        self._stop.clear()
        self._watcher = threading.Thread(target=self._watch, name="darkfab-watch", daemon=True)
        self._watcher.start()
        return self

    def stop(self, reason: str = "stopped") -> None:
        """Stop watching, let a running retrain finish, stop the server (its prediction log is flushed)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(30)
            self._watcher = None
        if self._retrainer is not None:
            self._retrainer.join()
            self._retrainer = None
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._app = None
            self._event(EventKind.LIFECYCLE_SERVING_STOPPED, f"serving stopped: {reason}", {})
        self._emit_new()

    def __enter__(self) -> Lifecycle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def run_until(self, stop: threading.Event) -> None:
        """Block until ``stop`` is set (a signal handler sets it), then stop cleanly."""
        try:
            while not stop.wait(0.2):
                if self._watcher is not None and not self._watcher.is_alive():
                    raise DarkfabError("the watcher thread died; see the log")
        finally:
            self.stop("asked to stop")

    def wait(self, predicate: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
        """Poll ``predicate`` until it holds or ``timeout`` seconds pass; True when it held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(every)
        return predicate()

    def timeline(self, since: datetime | None = None, after_event: int = 0) -> list[Step]:
        return timeline(self.store, self.base.name, since=since, after_event=after_event)

    # -- watching ---------------------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.check_every_s):
            try:
                self.check()
            except Exception:  # the watcher outlives a bad check (a store hiccup, a bad row)
                log.exception("monitor check of %r failed; trying again", self.base.name)

    def check(self) -> list[WindowResult]:
        """One round of the watcher: follow the champion, close windows, maybe start a retrain, alert."""
        aliases = self.store.aliases(self.factory_id)
        champion = aliases.get("champion")
        if champion is not None and champion != self._monitor_version:
            if self._monitor_version is not None:
                self._quiet_after = self._newest_prediction()  # judge the new champion on its own traffic
            self._monitor = self._make_monitor(champion)
            self._monitor_version = champion
        results = self._monitor.check() if self._monitor is not None else []
        for r in results:
            if r.trigger:
                self._consider(r, aliases)
        self._watch_decisions()
        self._emit_new()
        return results

    def _make_monitor(self, version: int) -> Monitor:
        return build_monitor(
            self.store, self.base.name, version, base=self.base, max_age_s=self.max_age_s, alerter=self.alerter
        )

    def _consider(self, window: WindowResult, aliases: dict[str, int]) -> None:
        why_not = ""
        if self.retraining:
            why_not = "a retraining campaign is already running"
        elif Pauses(self.store).state(self.factory_id) is not None:
            why_not = "the factory is paused"
        elif "challenger" in aliases and self.base.deploy.mode != "direct":
            why_not = f"challenger v{aliases['challenger']} is still being judged"
        elif window.record.first_prediction_id <= self._quiet_after or window.record.version != aliases.get("champion"):
            why_not = "the window holds traffic from before the last change of champion or campaign"
        elif time.monotonic() - self._last_retrain_end < self.cooldown_s:
            why_not = f"the last retrain ended less than {self.cooldown_s:g}s ago"
        if why_not:
            log.info("window %s of %r calls for a campaign; not now: %s", window.number, self.base.name, why_not)
            return
        trigger = "drift" if window.drift.dataset_drift else "quality_decay"
        self._retrainer = threading.Thread(
            target=self.retrain,
            kwargs={"reason": window.reason, "trigger": trigger, "window": window},
            name="darkfab-retrain",
            daemon=True,
        )
        self._retrainer.start()

    def _watch_decisions(self) -> None:
        for e in self.store.list_events(
            factory_id=self.factory_id, kinds=(EventKind.CHALLENGER_ROLLED_BACK,), after_id=self._seen_decision
        ):
            self._seen_decision = e.id
            self.alerter.send("rollback", factory=self.base.name, reason=e.reason, data=dict(e.data))

    def _emit_new(self) -> None:
        with self._emit_lock:
            steps = self.timeline(after_event=self._seen_event)
            if steps:
                self._seen_event = max(self._seen_event, max(s.event for s in steps))
        if self.on_step is not None:
            for s in steps:
                try:
                    self.on_step(s)
                except Exception:
                    log.exception("on_step failed on %s", s.kind)

    def _newest_prediction(self) -> int:
        found = self.store.list_predictions(self.factory_id, limit=1)
        return found[-1].id if found else 0

    def _event(self, kind: str, reason: str, data: dict[str, Any], campaign_id: int | None = None) -> None:
        self.store.append_event(
            kind=kind, reason=reason, factory_id=self.factory_id, campaign_id=campaign_id, data=data
        )

    # -- retraining -------------------------------------------------------------------------------------

    def retrain(self, reason: str, trigger: str = "drift", window: WindowResult | None = None) -> RunResult | None:
        """Run one retraining campaign now (the watcher calls this in its own thread); None when it failed."""
        name = self.base.name
        where = f"window {window.number}" if window is not None else "by request"
        self._event(
            EventKind.LIFECYCLE_RETRAIN_STARTED,
            f"{trigger} ({where}): {reason}; retraining on the reference data plus the labelled live rows",
            {"trigger": trigger, "window": window.number if window is not None else None},
        )
        self._emit_new()
        try:
            if window is not None and self.fresh_labels:
                self._await_labels(window.record.first_prediction_id)
            number = len(self.store.list_campaigns(self.factory_id)) + 1
            frame, n_live = retraining_frame(self.base, self.store, self.factory_id)
            folder = Path(self.store.artifact_root).parent / "data"
            folder.mkdir(parents=True, exist_ok=True)
            path = write_snapshot(frame, folder / f"{name}-campaign-{number}")  # Parquet, or CSV without pyarrow
            spec = derived_spec(self.base, path)
            result = Factory(spec, store=self.store).run(
                trials=self.retrain_trials, time=self.retrain_time, trigger=trigger
            )
        except Exception as err:
            text = f"{type(err).__name__}: {err}"
            self.failures.append(text)
            log.exception("retraining campaign of %r failed", name)
            self._event(EventKind.LIFECYCLE_RETRAIN_FAILED, f"retraining failed: {text}", {"trigger": trigger})
            self.alerter.send("campaign_failed", factory=name, reason=f"retraining campaign failed: {text}")
            return None
        finally:
            self._last_retrain_end = time.monotonic()
            self._quiet_after = self._newest_prediction()
        self.results.append(result)
        self._event(
            EventKind.LIFECYCLE_RETRAIN_FINISHED,
            outcome(result, n_live, len(frame), path),
            {
                "trigger": trigger,
                "campaign": result.campaign_number,
                "data": str(path),
                "rows": len(frame),
                "live_rows": n_live,
                "stopped_because": result.stopped_because,
                "champion": result.champion.version if result.champion else None,
                "alias": result.champion.alias if result.champion else None,
            },
            campaign_id=result.campaign,
        )
        if result.stop_reason and StopReason(result.stop_reason).is_spend_limit:
            self.alerter.send(
                "budget_reached",
                factory=name,
                reason=f"retraining campaign {result.campaign_number} stopped: {result.stopped_because}",
                data={"campaign": result.campaign_number, "budget": result.budget.to_dict()},
            )
        return result

    def _await_labels(self, first_id: int) -> None:
        deadline = time.monotonic() + self.fresh_wait_s
        while time.monotonic() < deadline and not self._stop.is_set():
            labelled = self.store.list_predictions(self.factory_id, labelled=True)
            if sum(1 for r in labelled if r.id >= first_id) >= self.fresh_labels:
                return
            time.sleep(0.25)
