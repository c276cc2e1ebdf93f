"""The prediction log writer: requests hand rows to a queue, one thread writes them in batches.

A request never waits for the store: ``submit`` only appends to a bounded queue (and drops, counting
the loss, when the store has fallen that far behind). The thread writes a batch every ``interval_s``
or every ``batch_rows`` rows, whichever comes first, and everything left on ``close``. A request does
not wake the thread either (a wake-up per request costs a GIL hand-off, about a sixth of the server's
throughput under load): the thread sleeps ``interval_s``, or until the queue holds a full batch.

Write-ahead (``wal_dir``): what is queued in memory dies with the process, so ``submit`` first appends
the rows as one JSON line to the current segment file (``<owner>-<n>.jsonl``; one ``write`` call, before
the answer is sent). The line is encoded before the lock is taken, and the lock covers only that
``write`` and the queue's append; the thread never creates, syncs or deletes a file while holding it (the
next segment is opened ahead, outside the lock, and the switch to it is two assignments). Each cycle the
thread switches to the next segment, fsyncs the old one, writes its rows to the store and deletes it; a
segment whose rows the store refused stays: when it was an outage (longer than the store waits, or a
connection cut mid-write) it is written again at each cycle until the store takes it, skipping rows
already there; otherwise it waits for the next start. The bound: a SIGKILL of the
server loses no answered prediction (the lines are in the operating system's hands), and a crash of the
machine itself loses at most the last ``interval_s`` of them (the unsynced segment). A server holds an
``flock`` on ``<owner>.lock`` while it runs; at start, the segments of owners whose lock is free (dead
servers) are replayed into the store, skipping rows already there (by request id and row), then deleted.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import json
import logging
import os
import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from ..errors import DarkfabError, StoreUnavailable
from ..store import Store
from ._metrics import ServeMetrics

log = logging.getLogger("darkfab.serve")

_STOP = object()
WAL_SUFFIX = ".jsonl"
LOCK_SUFFIX = ".lock"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


_ORJSON = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY


def encode_rows(rows: list[dict[str, Any]]) -> bytes:
    """One segment line: the rows as a JSON list, and a newline.

    orjson writes it (about a tenth of the standard encoder's time, on the request's path: turning floats
    into text is most of the write-ahead's cost); what it cannot write (an integer beyond 64 bits) goes
    through the standard encoder. NaN becomes ``null`` either way by the time it is stored.
    """
    try:
        return orjson.dumps(rows, default=_encode, option=_ORJSON)
    except TypeError:  # orjson.JSONEncodeError is one
        return (json.dumps(rows, default=_encode, separators=(",", ":")) + "\n").encode()


class WriteAhead:
    """The segment files of one server (see the module doc). Not thread-safe: the logger serialises
    :meth:`append` and :meth:`rotate`; :meth:`retire` and :meth:`prepare` need no lock."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock_fd = os.open(self.folder / f"{self.owner}{LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self._seq = 0
        self._spare: tuple[int, Path] | None = None
        self._fd, self._path = self._new()
        self._dirty = False
        self.prepare()

    def _new(self) -> tuple[int, Path]:
        self._seq += 1
        path = self.folder / f"{self.owner}-{self._seq:08d}{WAL_SUFFIX}"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), path

    def prepare(self) -> None:
        """Open the next segment ahead (an empty file), so that :meth:`rotate` creates none under the lock.

        Called by one thread at a time (the writer), never concurrently with :meth:`close`."""
        if self._spare is None:
            self._spare = self._new()

    def append(self, line: bytes) -> None:
        """Append one line made by :func:`encode_rows` (one ``write``: in the operating system's hands at return)."""
        os.write(self._fd, line)
        self._dirty = True

    def rotate(self) -> tuple[int, Path] | None:
        """Switch to the next segment; the old one's descriptor and path (None when nothing was written to it).

        The caller syncs and closes it with :meth:`retire`, and opens the next spare with :meth:`prepare`,
        outside the lock that requests take."""
        if not self._dirty:
            return None
        spare, self._spare = self._spare, None
        if spare is None:  # prepare failed last cycle (a full disk, say): try here, or keep the current one
            try:
                spare = self._new()
            except OSError:
                return None  # its rows stay in it: replayed without doubles if the server dies before a rotate
        old = (self._fd, self._path)
        self._fd, self._path = spare
        self._dirty = False
        return old

    @staticmethod
    def retire(fd: int) -> None:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Close and delete the (empty) current and spare segments, and the lock. Segments held stay for replay."""
        if self._spare is not None:
            os.close(self._spare[0])
            with contextlib.suppress(OSError):
                self._spare[1].unlink()
            self._spare = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            if not self._dirty:
                with contextlib.suppress(OSError):
                    self._path.unlink()
        with contextlib.suppress(OSError):
            (self.folder / f"{self.owner}{LOCK_SUFFIX}").unlink()
        os.close(self._lock_fd)

    def orphans(self) -> list[tuple[str, int | None, list[Path]]]:
        """(owner, its lock held by us or None, its segments oldest first) of every server that is gone."""
        segments: dict[str, list[Path]] = collections.defaultdict(list)
        for path in self.folder.glob(f"*{WAL_SUFFIX}"):
            owner = path.name[: -len(WAL_SUFFIX)].rpartition("-")[0]
            if owner != self.owner:
                segments[owner].append(path)
        locks = {p.name[: -len(LOCK_SUFFIX)] for p in self.folder.glob(f"*{LOCK_SUFFIX}")} - {self.owner}
        out: list[tuple[str, int | None, list[Path]]] = []
        for owner in sorted(set(segments) | locks):
            fd: int | None = None
            if owner in locks:
                try:
                    fd = os.open(self.folder / f"{owner}{LOCK_SUFFIX}", os.O_RDWR)
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # alive (the lock is held), or its lock file just went away
                    if fd is not None:
                        os.close(fd)
                    if (self.folder / f"{owner}{LOCK_SUFFIX}").exists():
                        continue
                    fd = None
            out.append((owner, fd, sorted(segments.get(owner, []))))
        return out

    def release(self, owner: str, fd: int | None) -> None:
        if fd is not None:
            with contextlib.suppress(OSError):
                (self.folder / f"{owner}{LOCK_SUFFIX}").unlink()
            os.close(fd)


def read_segment(path: Path) -> list[dict[str, Any]]:
    """The rows of a segment; a torn last line (a crash mid-write) is skipped with a warning."""
    rows: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            try:
                batch = json.loads(line)
            except ValueError:
                log.warning("prediction log %s: line %d is incomplete (a crash while writing it); skipped", path, n)
                continue
            for row in batch:
                row["created_at"] = datetime.fromisoformat(row["created_at"])
                rows.append(row)
    return rows


class PredictionLogger:
    def __init__(
        self,
        store: Store,
        metrics: ServeMetrics,
        *,
        interval_s: float = 0.2,
        batch_rows: int = 500,
        capacity_rows: int = 100_000,
        wal_dir: Path | None = None,
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
        self.wal_dir = wal_dir
        self._wal: WriteAhead | None = None
        self._wal_failing = False
        # segments the store refused in an outage, and whether this cycle met one: only the writer thread uses them
        self._kept: list[Path] = []
        self._outage = False
        self._queue: collections.deque[Any] = collections.deque()  # appends and pops are thread-safe
        self._wake = threading.Event()
        self._queued = 0
        self._count_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        """Replay what dead servers left in the write-ahead folder, then start the writer thread."""
        with self._start_lock:
            if self._thread is None and not self._closed:
                if self.wal_dir is not None and self._wal is None:
                    try:
                        self._wal = WriteAhead(self.wal_dir)
                    except OSError as err:
                        log.warning(
                            "no write-ahead prediction log in %s (%s): predictions still queued are lost if the "
                            "server is killed",
                            self.wal_dir,
                            err.strerror or err,
                        )
                    else:
                        self.replay()
                self._thread = threading.Thread(target=self._run, name="darkfab-prediction-log", daemon=True)
                self._thread.start()

    def replay(self) -> int:
        """Write the rows of dead servers' segments that the store lacks; returns how many were written."""
        wal = self._wal
        if wal is None:
            return 0
        written = 0
        for owner, fd, segments in wal.orphans():
            try:
                for path in segments:
                    written += self._write_segment(path)
            except (DarkfabError, OSError, ValueError, KeyError, TypeError) as err:
                log.warning("could not replay the prediction log of %s: %s (kept for the next start)", owner, err)
            finally:
                wal.release(owner, fd)
        if written:
            log.info("replayed %d logged predictions that a stopped server had not written to the store", written)
            self.metrics.log_written.inc(written)
        return written

    def _write_segment(self, path: Path) -> int:
        """Write the rows of a segment that the store lacks (by request id and row), then delete it."""
        written = 0
        by_factory: dict[int, list[dict[str, Any]]] = collections.defaultdict(list)
        for row in read_segment(path):
            by_factory[row["factory_id"]].append(row)
        for factory_id, group in by_factory.items():
            have = self.store.logged_keys(factory_id, [r["request_id"] for r in group])
            missing = [r for r in group if (r["request_id"], r.get("row", 0)) not in have]
            for i in range(0, len(missing), self.batch_rows):
                written += self.store.log_predictions(missing[i : i + self.batch_rows])
        path.unlink()
        return written

    def _retry_kept(self) -> None:
        """Write the segments of earlier cycles that the store refused (an outage longer than the store waits,
        or a connection cut mid-write), oldest first; what still fails stays for the next cycle."""
        written = 0
        while self._kept:
            try:
                written += self._write_segment(self._kept[0])
            except StoreUnavailable as err:
                log.warning("the prediction log still cannot reach the store (%s); trying again next cycle", err)
                break
            except (DarkfabError, OSError, ValueError, KeyError, TypeError) as err:
                log.warning("could not write %s: %s (kept for the next start)", self._kept[0], err)
            self._kept.pop(0)
        if written:
            log.info("wrote %d logged predictions that the store had refused earlier", written)
            self.metrics.log_written.inc(written)

    def submit(self, rows: list[dict[str, Any]]) -> bool:
        """Queue rows for the store; False (and counted as dropped) when closed or the queue is full."""
        line = encode_rows(rows) if self._wal is not None else b""  # outside the lock the writer also takes
        with self._count_lock:
            if self._closed or self._queued + len(rows) > self.capacity_rows:
                self.metrics.log_dropped.inc(len(rows))
                return False
            self._queued += len(rows)
            full = self._queued >= self.batch_rows
            if self._wal is not None and line:  # (started by another request since the line was encoded: none)
                try:
                    self._wal.append(line)
                except OSError as err:  # a full disk must not fail the request: the rows are only less safe
                    if not self._wal_failing:
                        log.warning("cannot append to the write-ahead prediction log: %s", err.strerror or err)
                    self._wal_failing = True
                else:
                    self._wal_failing = False
            self._queue.append(rows)
        if self._thread is None:
            self.start()
        if full:
            self._wake.set()
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row submitted before this call is written (or dropped); False on timeout."""
        if self._thread is None or not self._thread.is_alive():
            return True
        done = threading.Event()
        with self._count_lock:  # never between the thread's copy of the queue and its clearing
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
            with self._count_lock:
                self._queue.append(_STOP)
            self._wake.set()
            thread.join(timeout)
        if self._wal is not None and (thread is None or not thread.is_alive()):
            self._wal.close()

    def _write(self, rows: list[dict[str, Any]]) -> bool:
        if not rows:
            return True
        try:
            self.store.log_predictions(rows)
            self.metrics.log_written.inc(len(rows))
            return True
        except (DarkfabError, Exception) as err:  # the log must never take the server down
            self._outage = self._outage or isinstance(err, StoreUnavailable)
            self.metrics.log_errors.inc()
            self.metrics.log_dropped.inc(len(rows))
            kept = ""
            if self._wal is not None:
                kept = " (kept in the write-ahead log for the next start)"
                if isinstance(err, StoreUnavailable):
                    kept = " (kept in the write-ahead log; written once the store is back)"
            log.warning("could not write %d predictions to the store%s: %s", len(rows), kept, err)
            return False
        finally:
            with self._count_lock:
                self._queued -= len(rows)

    def _take(self) -> tuple[list[Any], Path | None]:
        """Everything queued, and the segment that holds exactly those rows (synced; a new one is started)."""
        wal = self._wal
        with self._count_lock:  # nothing here waits on the disk: rotate swaps in the segment opened ahead
            items = list(self._queue)
            self._queue.clear()
            old = wal.rotate() if wal is not None else None
        if wal is None or old is None:
            return items, None
        try:
            WriteAhead.retire(old[0])
        except OSError as err:
            log.warning("could not sync the write-ahead prediction log %s: %s", old[1], err.strerror or err)
        try:
            wal.prepare()
        except OSError as err:  # rotate opens it under the lock next cycle instead
            log.warning("could not open the next write-ahead prediction log segment: %s", err.strerror or err)
        return items, old[1]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            items, segment = self._take()
            self._retry_kept()
            self._outage = False
            pending: list[dict[str, Any]] = []
            ok = True
            stop = False
            for item in items:
                if item is _STOP:
                    stop = True
                    continue
                if isinstance(item, threading.Event):  # flush: what came before it is written first
                    ok = self._write_batches(pending) and ok
                    pending = []
                    item.set()
                    continue
                pending.extend(item)
            ok = self._write_batches(pending) and ok
            if segment is not None and ok:
                with contextlib.suppress(OSError):
                    segment.unlink()
            elif segment is not None and self._outage:
                self._kept.append(segment)  # written again next cycle; other refusals wait for the next start
            if stop:
                return

    def _write_batches(self, pending: list[dict[str, Any]]) -> bool:
        ok = True
        for i in range(0, len(pending), self.batch_rows):  # a large request is written in several batches
            ok = self._write(pending[i : i + self.batch_rows]) and ok
        return ok
