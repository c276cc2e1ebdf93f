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

import contextlib
import pickle
import shutil
import tempfile
import time
import weakref
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

from ..errors import ExecutorError
from ..train import WorkerPayload
from . import _worker
from ._base import FailureKind, Job, JobReport, TrainJob
from ._pooled import PooledExecutor
from ._process import Running, WorkerHandle, context

_REAP_S = 5.0  # how long a SIGKILLed worker may take to end before it is left to the fork server


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


class LocalExecutor(PooledExecutor[WorkerHandle]):
    """A warm pool of worker processes on this machine.

    Args:
        start_timeout_s: how long a worker may take to load the payload before the executor gives up.
        memory_check_s: how often a running job's resident memory is measured.
        log_tail_lines: the most lines of a job's output kept in :attr:`JobDone.log_tail`.
        log_tail_bytes: the most bytes of a job's output kept in :attr:`JobDone.log_tail`.
        address_space_backstop: also cap each worker's address space (``RLIMIT_AS``) far above the memory
            limit, so that an allocation too sudden for the watchdog fails with ``MemoryError``.
    """

    _TITLE = "local"
    _NOUN = "a worker"

    def __init__(
        self,
        *,
        start_timeout_s: float = 120.0,
        memory_check_s: float = 0.15,
        log_tail_lines: int = 40,
        log_tail_bytes: int = 4096,
        address_space_backstop: bool = True,
    ) -> None:
        super().__init__(
            start_timeout_s=start_timeout_s,
            memory_check_s=memory_check_s,
            log_tail_lines=log_tail_lines,
            log_tail_bytes=log_tail_bytes,
        )
        self._backstop = address_space_backstop
        self._threads = 1
        self._payload = b""
        self._ctx: BaseContext | None = None
        self._res: _Resources | None = None
        self._waitables: list[Any] = []
        self._owner: dict[Any, WorkerHandle] = {}

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

    # -- starting and stopping -------------------------------------------------------------------------

    def _open(self, payload: WorkerPayload) -> None:
        self._threads = max(1, int(payload.threads))
        self._payload = pickle.dumps(payload, protocol=5)  # pickled once, for every worker and replacement
        self._ctx = context()
        self._res = _Resources(tempfile.mkdtemp(prefix="darkfab-local-"))
        self._finalizer = weakref.finalize(self, self._res.shutdown)

    def _forget(self) -> None:
        self._waitables.clear()
        self._owner.clear()

    def _slow_start_error(self, missing: int, workers: int) -> str:
        return f"{missing} of {workers} workers did not load the payload within {self._start_timeout_s:g} s (start_timeout_s)"

    def _resting_mb(self, worker: WorkerHandle) -> float:
        return worker.resting_rss_mb()

    # -- workers ---------------------------------------------------------------------------------------

    def _workers_now(self) -> list[WorkerHandle]:
        assert self._res is not None
        return list(self._res.workers.values())

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

    def _retire(self, worker: WorkerHandle) -> None:
        assert self._res is not None
        self._owner.pop(worker.conn, None)
        self._owner.pop(worker.sentinel, None)
        self._waitables = [w for w in self._waitables if w is not worker.conn and w != worker.sentinel]
        with contextlib.suppress(ValueError):
            self._idle.remove(worker)
        self._res.retire(worker)

    def _begin(self, worker: WorkerHandle, job: Job, attempt: int) -> bool:
        if not worker.process.is_alive():  # died while idle: not the job's fault, so no attempt is spent
            self._replace(worker)
            return False
        if isinstance(job, TrainJob):
            message: tuple[Any, ...] = (_worker.TRAIN, job.job_id, job.request)
        else:
            message = (_worker.PREDICT, job.job_id, job.artifact, job.split)
        offset = worker.log_offset()
        if not worker.send(message):  # died while idle: the job waits for the next worker
            return False
        now = time.monotonic()
        worker.running = Running(
            job=job,
            attempts=attempt,
            started=now,
            deadline=now + self._limits.timeout_s,
            log_offset=offset,
            next_memory_check=now + self._memory_check_s,
        )
        return True

    def _send_answer(self, worker: WorkerHandle, *, stop: bool) -> None:
        worker.send((_worker.ANSWER, stop))

    # -- the limits ------------------------------------------------------------------------------------

    def _check_starting(self, now: float) -> None:
        for handle in self._workers_now():
            if handle.running is None and not handle.ready and now - handle.spawned > self._start_timeout_s:
                raise ExecutorError(
                    f"worker {handle.name} did not load the payload within {self._start_timeout_s:g} s "
                    "(start_timeout_s)"
                )

    def _watch(self, worker: WorkerHandle, now: float) -> float | None:
        """The memory watchdog: measure a running job's resident memory now and then, kill it past the limit."""
        running = worker.running
        limit_mb = self._limits.memory_mb
        assert running is not None
        if limit_mb is None:
            return running.deadline
        if now >= running.next_memory_check:
            rss = worker.rss_mb(running, now)
            running.peak_rss_mb = max(running.peak_rss_mb, rss)
            if rss > limit_mb:
                self._kill(
                    worker,
                    "memory",
                    f"memory: resident memory reached {rss:.0f} MB, past the limit of {limit_mb} MB "
                    "(limits.memory_mb); the worker was killed",
                )
                return None
            running.next_memory_check = now + self._memory_check_s
        return running.next_memory_check

    def _kill(self, worker: WorkerHandle, failure: FailureKind, error: str) -> None:
        running = worker.running
        assert running is not None
        cpu = worker.cpu_seconds() or 0.0  # read before the kill, while /proc still has it
        worker.kill()
        worker.reap(_REAP_S)
        worker.running = None
        tail = worker.log_tail(running.log_offset, **self._tail)
        self._replace(worker)
        self._finish(
            running,
            worker.name,
            failure=failure,
            error=error,
            log_tail=tail,
            cpu_seconds=cpu,
            peak_rss_mb=running.peak_rss_mb,
        )

    # -- what the workers say --------------------------------------------------------------------------

    def _collect(self, wait_s: float, *, starting: bool = False) -> None:
        """Read the messages of every pipe ready within ``wait_s``, then handle the workers that died."""
        dead: list[WorkerHandle] = []
        for obj in wait(self._waitables, wait_s):
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
            self._now_ready(handle)
        elif kind == _worker.FAILED:
            tail = handle.log_tail(0, **self._tail)
            raise ExecutorError(f"worker {handle.name} could not load the payload: {message[1]}\n{tail}".rstrip())

    def _on_done(self, handle: WorkerHandle, message: tuple[Any, ...]) -> None:
        _, job_id, ok, output, failure, error, cpu, peak, cpu_total = message
        running = handle.running
        handle.running = None
        handle.cpu_total = cpu_total
        self._idle.append(handle)
        if running is None or running.job.job_id != job_id:  # pragma: no cover - protocol error
            return
        self._finish(
            running,
            handle.name,
            ok=ok,
            output=output,
            failure=failure,
            error=error,
            log_tail=handle.log_tail(running.log_offset, **self._tail),
            cpu_seconds=cpu,
            peak_rss_mb=max(peak, running.peak_rss_mb),
        )

    def _on_death(self, handle: WorkerHandle, *, starting: bool) -> None:
        """A worker ended without being asked: replace it, and retry its job or report the crash."""
        while (message := handle.receive()) is not None:  # what it sent before it died still counts
            self._on_message(handle, message)
        handle.reap(_REAP_S)
        why = handle.death()
        running = handle.running
        if not handle.ready and self._start_failed(starting=starting):
            tail = handle.log_tail(0, **self._tail)
            raise ExecutorError(f"{why} while loading the payload\n{tail}".rstrip())
        if running is None:
            self._replace(handle)
            return
        handle.running = None
        tail = handle.log_tail(running.log_offset, **self._tail)
        cpu = handle.cpu_seconds() or 0.0
        self._replace(handle)
        if not self._retry(running):
            self._finish(
                running,
                handle.name,
                failure="crash",
                error=self._crash_error(why, running),
                log_tail=tail,
                cpu_seconds=cpu,
                peak_rss_mb=running.peak_rss_mb,
            )
