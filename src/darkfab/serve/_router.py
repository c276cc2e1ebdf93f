"""Routing between the champion and a challenger, the shadow worker, and the watcher thread.

What is served is one immutable :class:`Routing` (champion, challenger or None, mode, share) held in ONE
attribute of the service. A request reads it once and gets a :class:`Route`: the deployment that answers,
its role, and in shadow mode the challenger that predicts the same rows afterwards, off the request path.

* ``canary``: each request (not each row) goes to the challenger with probability ``share``.
* ``shadow``: the champion answers every request; the challenger predicts the same rows in the
  :class:`ShadowWorker` thread. Its answers are never returned and never written to the prediction log
  (the log holds what clients were told); they are kept in memory only, for the live figures and for
  labels that arrive later.
* ``direct``: the champion answers; a ``challenger`` alias is ignored.

The :class:`Watcher` thread runs the service's ``tick`` every ``interval_s`` (and at once when woken):
it polls the store's aliases (one small query), loads a changed champion or challenger completely, then
swaps the routing; and it decides a contest once the challenger has seen enough requests.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import DarkfabError
from ._deployment import CHALLENGER, CHAMPION, Deployment

log = logging.getLogger("darkfab.serve")


@dataclass(frozen=True)
class Routing:
    """Who answers. Never changed once made; a change is a new Routing."""

    champion: Deployment
    challenger: Deployment | None
    mode: str  # direct | canary | shadow
    share: float

    def versions(self) -> dict[str, int]:
        out = {CHAMPION: self.champion.version}
        if self.challenger is not None:
            out[CHALLENGER] = self.challenger.version
        return out


@dataclass(frozen=True)
class Route:
    """Where one request goes."""

    deployment: Deployment
    role: str
    champion: Deployment  # answers instead when a canary challenger fails on the request
    shadow: Deployment | None = None
    pinned: bool = False  # the path named the version: no fallback, no shadow


def choose(routing: Routing, draw: Callable[[], float]) -> Route:
    """The route of a request that names no version; ``draw`` returns a uniform number in [0, 1)."""
    champion, challenger = routing.champion, routing.challenger
    if challenger is None or routing.mode == "direct":
        return Route(champion, CHAMPION, champion)
    if routing.mode == "canary":
        if draw() < routing.share:
            return Route(challenger, CHALLENGER, champion)
        return Route(champion, CHAMPION, champion)
    return Route(champion, CHAMPION, champion, shadow=challenger)


@dataclass(frozen=True)
class ShadowJob:
    deployment: Deployment
    request_id: str
    frame: pd.DataFrame
    rows: list[dict[str, Any]]
    schema: Any  # the schema ``frame`` was built with


_STOP = object()


class ShadowWorker:
    """A bounded queue and one thread that runs ``work`` on each job; a full queue drops (``on_drop``)."""

    def __init__(self, work: Callable[[ShadowJob], None], *, capacity: int, on_drop: Callable[[], None]) -> None:
        if capacity < 1:
            raise ValueError(f"shadow capacity must be >= 1, got {capacity}")
        self._work = work
        self._on_drop = on_drop
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="darkfab-shadow", daemon=True)
                self._thread.start()

    def submit(self, job: ShadowJob) -> bool:
        if self._closed:
            return False
        if self._thread is None:
            self.start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._on_drop()
            return False
        return True

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every job submitted before this call has run; False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=timeout)
            except queue.Full:
                return
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self._work(item)
            except Exception:  # a shadow must never take the server down
                log.exception("shadow prediction failed unexpectedly")


class Watcher:
    """Runs ``tick`` every ``interval_s`` seconds in a daemon thread, and at once after :meth:`wake`."""

    def __init__(self, tick: Callable[[], None], interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"poll interval must be > 0 seconds, got {interval_s}")
        self._tick = tick
        self.interval_s = interval_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="darkfab-routing", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._tick()
            except DarkfabError as err:  # the store out longer than it waits: said in one line, tried again
                log.warning("routing watcher: %s; retrying in %.1f s", err, self.interval_s)
            except Exception:  # a bug: its traceback is what the operator needs
                log.exception("routing watcher: tick failed; retrying in %.1f s", self.interval_s)
