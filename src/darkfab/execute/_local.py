"""The local executor: a warm pool of worker processes on this machine.

Workers are forked from multiprocessing's fork server, which imported numpy, pandas, scikit-learn,
LightGBM, XGBoost and darkfab.train once, so a worker (or its replacement) starts in milliseconds. Each
worker receives the payload once, over its pipe, and then runs job after job. The executor is driven from
one thread: :meth:`LocalExecutor.poll` waits on every worker's pipe and process sentinel at once, hands
queued jobs to idle workers, enforces the limits and returns what happened.

Failures, and what the pool does about them:

- the job raises: ``exception`` (``MemoryError``: ``memory``), never retried; the worker stays;
- the job runs past ``limits.timeout_s``: ``timeout``; the worker is SIGKILLed and replaced;
- the worker's resident memory (children included) passes ``limits.memory_mb``: ``memory``; killed, replaced;
- the worker dies unasked (segfault, ``os._exit``, the OOM killer): an infrastructure fault; the worker is
  replaced and the job retried ``limits.retries`` times, then ``crash``;
- :meth:`LocalExecutor.cancel`: ``cancelled``; a running job's worker is killed and replaced.

The timeout and the memory watchdog act inside :meth:`LocalExecutor.poll`, which the factory's loop calls
several times a second; between calls an address-space limit (``RLIMIT_AS``, set far above the memory
limit) turns a sudden huge allocation into ``MemoryError``. A worker whose parent dies exits by itself
(a thread waits on the parent's sentinel; it needs the GIL, which long-running C code in numerical
libraries releases).

As with any multiprocessing start method but ``fork``, each worker imports the factory's ``__main__``
module: a script that starts a factory needs an ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import collections
import contextlib
import pickle
import shutil
import tempfile
import time
import weakref
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

from ..errors import ExecutorError, SpecError
from ..train import WorkerPayload
from . import _worker
from ._base import Event, Executor, FailureKind, Job, JobDone, JobReport, Limits, PredictJob, TrainJob
from ._process import Running, WorkerHandle, context

_REAP_S = 5.0  # how long a SIGKILLed worker may take to end before it is left to the fork server
_MAX_START_FAILURES = 3  # replacement workers that die before they are ready, in a row, before giving up


class _Resources:
    """What must be released even if the executor is never closed: processes, file descriptors, temp files."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.workers: dict[str, WorkerHandle] = {}
        self.dying: list[WorkerHandle] = []  # killed, not yet seen to end

    def retire(self, handle: WorkerHandle) -> None:
        self.workers.pop(handle.name, None)
        if handle.reap(_REAP_S):
            handle.release()
        else:  # pragma: no cover - a process stuck in uninterruptible sleep; tried again at shutdown
            self.dying.append(handle)

    def shutdown(self) -> None:
        handles = [*self.workers.values(), *self.dying]
        self.workers.clear()
        self.dying.clear()
        for handle in handles:
            handle.kill()
        for handle in handles:
            handle.reap(_REAP_S)
            handle.release()
        shutil.rmtree(self.log_dir, ignore_errors=True)


class LocalExecutor(Executor):
    """A warm pool of worker processes on this machine.

    Args:
        start_timeout_s: how long a worker may take to load the payload before the executor gives up.
        memory_check_s: how often a running job's resident memory is measured.
        log_tail_lines: the most lines of a job's output kept in :attr:`JobDone.log_tail`.
        log_tail_bytes: the most bytes of a job's output kept in :attr:`JobDone.log_tail`.
        address_space_backstop: also cap each worker's address space (``RLIMIT_AS``) far above the memory
            limit, so that an allocation too sudden for the watchdog fails with ``MemoryError``.
    """

    def __init__(
        self,
        *,
        start_timeout_s: float = 120.0,
        memory_check_s: float = 0.15,
        log_tail_lines: int = 40,
        log_tail_bytes: int = 4096,
        address_space_backstop: bool = True,
    ) -> None:
        if start_timeout_s <= 0 or memory_check_s <= 0:
            raise ValueError(
                f"`start_timeout_s` and `memory_check_s` must be positive, got {start_timeout_s=}, {memory_check_s=}"
            )
        self._start_timeout_s = start_timeout_s
        self._memory_check_s = memory_check_s
        self._tail_lines = log_tail_lines
        self._tail_bytes = log_tail_bytes
        self._backstop = address_space_backstop
        self._status = "new"  # new -> started -> closed
        self._workers = 0
        self._limits = Limits()
        self._threads = 1
        self._payload = b""
        self._ctx: BaseContext | None = None
        self._res: _Resources | None = None
        self._finalizer: weakref.finalize | None = None
        self._serial = 0
        self._queue: collections.deque[tuple[Job, int]] = collections.deque()  # (job, attempt number)
        self._jobs: dict[str, WorkerHandle | None] = {}  # job id -> its worker, None while queued
        self._idle: list[WorkerHandle] = []
        self._events: list[Event] = []
        self._waitables: list[Any] = []
        self._owner: dict[Any, WorkerHandle] = {}
        self._start_failures = 0

    # -- the Executor API ------------------------------------------------------------------------------

    def start(self, payload: WorkerPayload, *, workers: int, limits: Limits) -> None:
        if self._status != "new":
            raise ExecutorError(f"this executor was already started (it is {self._status}); make a new one")
        if workers < 1:
            raise ValueError(f"`workers` must be at least 1, got {workers}")
        self._workers = workers
        self._limits = limits
        self._threads = max(1, int(payload.threads))
        self._payload = pickle.dumps(payload, protocol=5)  # pickled once, for every worker and replacement
        self._ctx = context()
        self._res = _Resources(tempfile.mkdtemp(prefix="darkfab-local-"))
        self._finalizer = weakref.finalize(self, self._res.shutdown)
        self._status = "started"
        try:
            for _ in range(workers):
                self._spawn()
            deadline = time.monotonic() + self._start_timeout_s
            while len(self._idle) < workers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExecutorError(
                        f"{workers - len(self._idle)} of {workers} workers did not load the payload within "
                        f"{self._start_timeout_s:g} s (start_timeout_s)"
                    )
                self._handle(wait(self._waitables, remaining), starting=True)
            self._check_memory_limit()
        except BaseException:
            self.close()
            raise

    def _check_memory_limit(self) -> None:
        """Refuse a memory limit that a worker at rest, payload loaded, already exceeds: every job would fail."""
        limit = self._limits.memory_mb
        if limit is None:
            return
        resting = max((h.resting_rss_mb() for h in self._idle), default=0.0)
        if resting >= limit:
            raise SpecError(
                f"limits: `memory_mb` is {limit} MB, but a worker with the data loaded and no job running "
                f"already holds {resting:.0f} MB; fix: raise execution.memory_mb above {resting * 1.5:.0f}"
            )

    def submit(self, job: Job) -> None:
        self._check_started()
        if not isinstance(job, (TrainJob, PredictJob)):
            raise TypeError(f"submit takes a TrainJob or a PredictJob, got {type(job).__name__}")
        if job.job_id in self._jobs:
            raise ValueError(f"job id {job.job_id!r} is already in flight; job ids must be unique")
        self._jobs[job.job_id] = None
        self._queue.append((job, 1))

    def poll(self, timeout: float) -> list[Event]:
        self._check_started()
        deadline = time.monotonic() + max(0.0, timeout)
        first = True
        while True:
            self._dispatch()
            now = time.monotonic()
            next_check = self._enforce(now)
            if self._events:
                self._handle(wait(self._waitables, 0))  # also take whatever else is already there
                self._dispatch()
                break
            remaining = deadline - now
            if remaining <= 0 and not first:
                break
            first = False
            self._handle(wait(self._waitables, max(0.0, min(remaining, next_check - now))))
        events, self._events = self._events, []
        return events

    def answer(self, job_id: str, *, stop: bool) -> None:
        self._check_started()
        handle = self._jobs.get(job_id)
        running = handle.running if handle is not None else None
        if handle is None or running is None or not running.awaiting_answer:
            return  # the job has ended (killed, cancelled) since its report: nothing waits for the answer
        running.awaiting_answer = False
        handle.send((_worker.ANSWER, bool(stop)))

    def cancel(self, job_id: str, reason: str) -> None:
        self._check_started()
        if job_id not in self._jobs:
            return  # unknown, or already done
        handle = self._jobs[job_id]
        if handle is None:
            for i, (job, attempt) in enumerate(self._queue):
                if job.job_id == job_id:
                    del self._queue[i]
                    del self._jobs[job_id]
                    self._events.append(
                        JobDone(
                            job_id=job_id,
                            ok=False,
                            output=None,
                            failure="cancelled",
                            error=reason,
                            attempts=attempt - 1,
                        )
                    )
                    return
        else:
            self._kill(handle, "cancelled", reason)

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs the shutdown once; later calls do nothing
        self._status = "closed"
        self._queue.clear()
        self._jobs.clear()
        self._idle.clear()
        self._events.clear()
        self._waitables.clear()
        self._owner.clear()

    @property
    def capacity(self) -> int:
        return self._workers if self._status == "started" else 0

    @property
    def in_flight(self) -> int:
        return len(self._jobs) + sum(isinstance(e, JobDone) for e in self._events)

    # -- for tests and diagnostics ---------------------------------------------------------------------

    @property
    def worker_pids(self) -> dict[str, int]:
        """The live workers: name -> process id."""
        if self._res is None:
            return {}
        return {name: h.process.pid for name, h in self._res.workers.items() if h.process.pid is not None}

    @property
    def log_dir(self) -> str | None:
        """The temporary folder of the workers' logs (deleted by :meth:`close`)."""
        return self._res.log_dir if self._res is not None else None

    # -- workers ---------------------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self._status != "started":
            what = "call start() first" if self._status == "new" else "it was closed; make a new one"
            raise ExecutorError(f"the local executor is not running: {what}")

    def _spawn(self) -> None:
        assert self._ctx is not None and self._res is not None
        self._serial += 1
        handle = WorkerHandle(
            self._ctx,
            name=f"local-{self._serial}",
            log_dir=self._res.log_dir,
            threads=self._threads,
            memory_mb=self._limits.memory_mb,
            address_space_backstop=self._backstop,
        )
        self._res.workers[handle.name] = handle
        self._owner[handle.conn] = handle
        self._owner[handle.sentinel] = handle
        self._waitables.extend((handle.conn, handle.sentinel))
        handle.send(self._payload)  # a worker that died already is reported by its sentinel

    def _retire(self, handle: WorkerHandle) -> None:
        assert self._res is not None
        self._owner.pop(handle.conn, None)
        self._owner.pop(handle.sentinel, None)
        self._waitables = [w for w in self._waitables if w is not handle.conn and w != handle.sentinel]
        with contextlib.suppress(ValueError):
            self._idle.remove(handle)
        self._res.retire(handle)

    def _replace(self, handle: WorkerHandle) -> None:
        self._retire(handle)
        if self._status == "started":
            self._spawn()

    # -- the loop --------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            handle = self._idle.pop()
            if not handle.process.is_alive():  # died while idle: not the job's fault, so no attempt is spent
                self._replace(handle)
                continue
            job, attempt = self._queue.popleft()
            if isinstance(job, TrainJob):
                message: tuple[Any, ...] = (_worker.TRAIN, job.job_id, job.request)
            else:
                message = (_worker.PREDICT, job.job_id, job.artifact, job.split)
            offset = handle.log_offset()
            if not handle.send(message):  # died while idle: the job waits for the next worker
                self._queue.appendleft((job, attempt))
                continue
            now = time.monotonic()
            handle.running = Running(
                job=job,
                attempts=attempt,
                started=now,
                deadline=now + self._limits.timeout_s,
                log_offset=offset,
                next_memory_check=now + self._memory_check_s,
            )
            self._jobs[job.job_id] = handle

    def _enforce(self, now: float) -> float:
        """Kill jobs past their limits; return when the next check is due."""
        next_check = now + 3600.0
        limit_mb = self._limits.memory_mb
        assert self._res is not None
        for handle in list(self._res.workers.values()):
            running = handle.running
            if running is None:
                if not handle.ready and now - handle.spawned > self._start_timeout_s:
                    raise ExecutorError(
                        f"worker {handle.name} did not load the payload within {self._start_timeout_s:g} s "
                        "(start_timeout_s)"
                    )
                continue
            if now >= running.deadline:
                self._kill(
                    handle,
                    "timeout",
                    f"timeout: the job ran past the limit of {self._limits.timeout_s:g} s (limits.timeout_s) "
                    "and its worker was killed",
                )
                continue
            if limit_mb is not None and now >= running.next_memory_check:
                rss = handle.rss_mb(running, now)
                running.peak_rss_mb = max(running.peak_rss_mb, rss)
                if rss > limit_mb:
                    self._kill(
                        handle,
                        "memory",
                        f"memory: resident memory reached {rss:.0f} MB, past the limit of {limit_mb} MB "
                        "(limits.memory_mb); the worker was killed",
                    )
                    continue
                running.next_memory_check = now + self._memory_check_s
            next_check = min(next_check, running.deadline)
            if limit_mb is not None:
                next_check = min(next_check, running.next_memory_check)
        return next_check

    def _handle(self, ready: list[Any], *, starting: bool = False) -> None:
        """Read the messages of every ready pipe, then handle the workers that died."""
        dead: list[WorkerHandle] = []
        for obj in ready:
            handle = self._owner.get(obj)
            if handle is None:
                continue
            if obj is handle.conn:
                message = handle.receive()
                if message is None:  # end of file: the worker is gone; its sentinel follows
                    self._waitables = [w for w in self._waitables if w is not handle.conn]
                else:
                    self._on_message(handle, message)
            else:
                dead.append(handle)
        for handle in dead:
            if self._owner.get(handle.sentinel) is handle:
                self._on_death(handle, starting=starting)

    def _on_message(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == _worker.DONE:
            self._on_done(handle, message)
        elif kind == _worker.REPORT:
            running = handle.running
            if running is not None and running.job.job_id == message[1]:
                running.awaiting_answer = True
                self._events.append(JobReport(job_id=message[1], step=message[2], predictions=message[3]))
        elif kind == _worker.READY:
            handle.ready = True
            handle.cpu_total = message[1]
            self._start_failures = 0
            self._idle.append(handle)
        elif kind == _worker.FAILED:
            tail = handle.log_tail(0, max_lines=self._tail_lines, max_bytes=self._tail_bytes)
            raise ExecutorError(f"worker {handle.name} could not load the payload: {message[1]}\n{tail}".rstrip())

    def _on_done(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        _, job_id, ok, output, failure, error, cpu, peak, cpu_total = message
        running = handle.running
        handle.running = None
        handle.cpu_total = cpu_total
        self._idle.append(handle)
        if running is None or running.job.job_id != job_id:  # pragma: no cover - protocol error
            return
        self._jobs.pop(job_id, None)
        self._events.append(
            JobDone(
                job_id=job_id,
                ok=ok,
                output=output,
                failure=failure,
                error=error,
                log_tail=handle.log_tail(running.log_offset, max_lines=self._tail_lines, max_bytes=self._tail_bytes),
                attempts=running.attempts,
                worker=handle.name,
                cpu_seconds=cpu,
                peak_rss_mb=max(peak, running.peak_rss_mb),
            )
        )

    def _on_death(self, handle: WorkerHandle, *, starting: bool) -> None:
        """A worker ended without being asked: replace it, and retry its job or report the crash."""
        while (message := handle.receive()) is not None:  # what it sent before it died still counts
            self._on_message(handle, message)
        handle.reap(_REAP_S)
        why = handle.death()
        running = handle.running
        if not handle.ready:
            self._start_failures += 1
            if starting or self._start_failures >= _MAX_START_FAILURES:
                tail = handle.log_tail(0, max_lines=self._tail_lines, max_bytes=self._tail_bytes)
                raise ExecutorError(f"{why} while loading the payload\n{tail}".rstrip())
        if running is None:
            self._replace(handle)
            return
        handle.running = None
        job_id = running.job.job_id
        tail = handle.log_tail(running.log_offset, max_lines=self._tail_lines, max_bytes=self._tail_bytes)
        cpu = handle.cpu_seconds() or 0.0
        self._replace(handle)
        if running.attempts <= self._limits.retries:
            self._jobs[job_id] = None
            self._queue.appendleft((running.job, running.attempts + 1))
            return
        self._jobs.pop(job_id, None)
        self._events.append(
            JobDone(
                job_id=job_id,
                ok=False,
                output=None,
                failure="crash",
                error=f"{why} (attempt {running.attempts} of {self._limits.retries + 1})",
                log_tail=tail,
                attempts=running.attempts,
                worker=handle.name,
                cpu_seconds=cpu,
                peak_rss_mb=running.peak_rss_mb,
            )
        )

    def _kill(self, handle: WorkerHandle, failure: FailureKind, error: str) -> None:
        """End a running job by killing its worker, report it, and start a replacement."""
        running = handle.running
        assert running is not None
        cpu = handle.cpu_seconds() or 0.0  # read before the kill, while /proc still has it
        handle.kill()
        handle.reap(_REAP_S)
        handle.running = None
        tail = handle.log_tail(running.log_offset, max_lines=self._tail_lines, max_bytes=self._tail_bytes)
        self._jobs.pop(running.job.job_id, None)
        self._replace(handle)
        self._events.append(
            JobDone(
                job_id=running.job.job_id,
                ok=False,
                output=None,
                failure=failure,
                error=error,
                log_tail=tail,
                attempts=running.attempts,
                worker=handle.name,
                cpu_seconds=cpu,
                peak_rss_mb=running.peak_rss_mb,
            )
        )
