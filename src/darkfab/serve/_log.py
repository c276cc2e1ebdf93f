"""The prediction log writer: requests hand rows to a queue, one thread writes them in batches.

A request never waits for the store: ``submit`` only appends to a bounded queue (and drops, counting
the loss, when the store has fallen that far behind). The thread writes a batch every ``interval_s``
or every ``batch_rows`` rows, whichever comes first, and everything left on ``close``. A request does
not wake the thread either (a wake-up per request costs a GIL hand-off, about a sixth of the server's
throughput under load): the thread sleeps ``interval_s``, or until the queue holds a full batch.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any

from ..errors import DarkfabError
from ..store import Store
from ._metrics import ServeMetrics

log = logging.getLogger("darkfab.serve")

_STOP = object()


class PredictionLogger:
    def __init__(
        self,
        store: Store,
        metrics: ServeMetrics,
        *,
        interval_s: float = 0.2,
        batch_rows: int = 500,
        capacity_rows: int = 100_000,
    ) -> None:
        if interval_s <= 0 or batch_rows < 1 or capacity_rows < 1:
            raise ValueError(
                f"need interval_s > 0, batch_rows >= 1, capacity_rows >= 1; got {interval_s=}, "
                f"{batch_rows=}, {capacity_rows=}"
            )
        self.store = store
        self.metrics = metrics
        self.interval_s = interval_s
        self.batch_rows = batch_rows
        self.capacity_rows = capacity_rows
        self._queue: collections.deque[Any] = collections.deque()  # appends and pops are thread-safe
        self._wake = threading.Event()
        self._queued = 0
        self._count_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="darkfab-prediction-log", daemon=True)
                self._thread.start()

    def submit(self, rows: list[dict[str, Any]]) -> bool:
        """Queue rows for the store; False (and counted as dropped) when closed or the queue is full."""
        with self._count_lock:
            if self._closed or self._queued + len(rows) > self.capacity_rows:
                self.metrics.log_dropped.inc(len(rows))
                return False
            self._queued += len(rows)
            full = self._queued >= self.batch_rows
        if self._thread is None:
            self.start()
        self._queue.append(rows)
        if full:
            self._wake.set()
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row submitted before this call is written (or dropped); False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        self._queue.append(done)
        self._wake.set()
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the thread. Safe to call twice."""
        with self._count_lock:
            if self._closed:
                return
            self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.append(_STOP)
            self._wake.set()
            thread.join(timeout)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        try:
            self.store.log_predictions(rows)
            self.metrics.log_written.inc(len(rows))
        except (DarkfabError, Exception) as err:  # the log must never take the server down
            self.metrics.log_errors.inc()
            self.metrics.log_dropped.inc(len(rows))
            log.warning("could not write %d predictions to the store: %s", len(rows), err)
        finally:
            with self._count_lock:
                self._queued -= len(rows)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            pending: list[dict[str, Any]] = []
            while self._queue:
                item = self._queue.popleft()
                if item is _STOP:
                    self._write_batches(pending)
                    return
                if isinstance(item, threading.Event):  # flush: what came before it is written first
                    self._write_batches(pending)
                    pending = []
                    item.set()
                    continue
                pending.extend(item)
            self._write_batches(pending)

    def _write_batches(self, pending: list[dict[str, Any]]) -> None:
        for i in range(0, len(pending), self.batch_rows):  # a large request is written in several batches
            self._write(pending[i : i + self.batch_rows])
