"""The pooled executor: what the local pool and the Ray pool share.

A :class:`PooledExecutor` keeps the job table, the queue, the retries and the bookkeeping of ``submit``,
``poll``, ``answer``, ``cancel`` and ``close``; a subclass says only how its workers are spawned, handed a
job, watched, killed and heard from (the abstract methods below). Both pools therefore treat a job the same
way:

- a job waits in the queue until a worker is idle, then runs there as an :class:`Attempt`;
- past ``limits.timeout_s`` it ends with ``timeout`` and its worker is killed and replaced;
- a worker that dies unasked is replaced and its job queued again, at the front, ``limits.retries`` times;
- ``cancel`` ends a queued job at once (``attempts`` counts the runs it had) and kills a running one's worker;
- every job submitted ends with exactly one :class:`~darkfab.execute.JobDone`.

Used from one thread, the factory's loop, like every executor.
"""

from __future__ import annotations

import abc
import collections
import math
import time
import weakref
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypedDict, TypeVar, Unpack

import numpy as np

from ..errors import ExecutorError, SpecError
from ..train import TrialOutput, WorkerPayload
from ._base import Event, Executor, FailureKind, Job, JobDone, Limits, PredictJob, TrainJob

MAX_START_FAILURES = 3  # replacement workers that die before they are ready, in a row, before giving up


@dataclass(kw_only=True)
class Attempt:
    """One run of a job on a worker: what the pool's limits, retries and answers need."""

    job: Job
    attempts: int  # this run's number: 1, then 2 after a retry
    deadline: float  # time.monotonic() past which the job is killed (limits.timeout_s)
    awaiting_answer: bool = False  # the job reported and waits for Executor.answer


class PoolWorker(Protocol):
    """One worker, as the pool sees it: a process of the local pool, an actor of the Ray pool."""

    @property
    def name(self) -> str: ...

    @property
    def ready(self) -> bool: ...

    @property
    def running(self) -> Attempt | None: ...


W = TypeVar("W", bound=PoolWorker)


class Outcome(TypedDict, total=False):
    """How a job ended, besides ``ok`` and ``output``: the fields of a JobDone that a run fills in."""

    failure: FailureKind | None
    error: str | None
    log_tail: str
    cpu_seconds: float
    peak_rss_mb: float


class PooledExecutor(Executor, Generic[W]):
    """A pool of warm workers that run queued jobs one at a time each, with limits and retries.

    Args:
        start_timeout_s: how long the workers may take to start and load the payload.
        memory_check_s: how often a running job's memory is measured.
        log_tail_lines: the most lines of a job's output kept in :attr:`JobDone.log_tail`.
        log_tail_bytes: the most bytes of a job's output kept in :attr:`JobDone.log_tail`.
    """

    _TITLE: ClassVar[str] = "pooled"  # "the <title> executor is not running"
    _NOUN: ClassVar[str] = "a worker"  # "<noun> with the data loaded and no job running"
    _START_POLL_S: ClassVar[float] = math.inf  # the longest one wait while the workers start

    def __init__(
        self, *, start_timeout_s: float, memory_check_s: float, log_tail_lines: int, log_tail_bytes: int
    ) -> None:
        if start_timeout_s <= 0 or memory_check_s <= 0:
            raise ValueError(
                f"`start_timeout_s` and `memory_check_s` must be positive, got {start_timeout_s=}, {memory_check_s=}"
            )
        self._start_timeout_s = start_timeout_s
        self._memory_check_s = memory_check_s
        self._tail = {"max_lines": log_tail_lines, "max_bytes": log_tail_bytes}
        self._status = "new"  # new -> started -> closed
        self._workers = 0
        self._limits = Limits()
        self._finalizer: weakref.finalize | None = None
        self._serial = 0
        self._queue: collections.deque[tuple[Job, int]] = collections.deque()  # (job, attempt number)
        self._jobs: dict[str, W | None] = {}  # job id -> its worker, None while queued
        self._idle: list[W] = []
        self._events: list[Event] = []
        self._start_failures = 0

    # -- the Executor API ------------------------------------------------------------------------------

    def start(self, payload: WorkerPayload, *, workers: int, limits: Limits) -> None:
        if self._status != "new":
            raise ExecutorError(f"this executor was already started (it is {self._status}); make a new one")
        if workers < 1:
            raise ValueError(f"`workers` must be at least 1, got {workers}")
        self._workers = workers
        self._limits = limits
        self._open(payload)
        self._status = "started"
        try:
            self._load(payload)
            for _ in range(workers):
                self._spawn()
            deadline = time.monotonic() + self._start_timeout_s
            while len(self._idle) < workers:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ExecutorError(self._slow_start_error(workers - len(self._idle), workers))
                self._collect(min(remaining, self._START_POLL_S), starting=True)
            self._check_memory_limit()
        except BaseException:
            self.close()
            raise

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
                self._collect(0.0)  # also take whatever else is already there
                self._dispatch()
                break
            remaining = deadline - now
            if remaining <= 0 and not first:
                break
            first = False
            self._collect(max(0.0, min(remaining, next_check - now)))
        events, self._events = self._events, []
        return events

    def answer(self, job_id: str, *, stop: bool) -> None:
        self._check_started()
        worker = self._jobs.get(job_id)
        running = worker.running if worker is not None else None
        if worker is None or running is None or not running.awaiting_answer:
            return  # the job has ended (killed, cancelled) since its report: nothing waits for the answer
        running.awaiting_answer = False
        self._send_answer(worker, stop=bool(stop))

    def cancel(self, job_id: str, reason: str) -> None:
        self._check_started()
        if job_id not in self._jobs:
            return  # unknown, or already done
        worker = self._jobs[job_id]
        if worker is not None:
            self._kill(worker, "cancelled", reason)
            return
        for i, (job, attempt) in enumerate(self._queue):
            if job.job_id == job_id:
                del self._queue[i]
                del self._jobs[job_id]
                self._events.append(
                    JobDone(
                        job_id=job_id, ok=False, output=None, failure="cancelled", error=reason, attempts=attempt - 1
                    )
                )
                return

    def close(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs the shutdown once; later calls do nothing
        self._status = "closed"
        for table in (self._queue, self._jobs, self._idle, self._events):
            table.clear()
        self._forget()

    @property
    def capacity(self) -> int:
        return self._workers if self._status == "started" else 0

    @property
    def in_flight(self) -> int:
        return len(self._jobs) + sum(isinstance(e, JobDone) for e in self._events)

    # -- what a pool implements ------------------------------------------------------------------------

    @abc.abstractmethod
    def _open(self, payload: WorkerPayload) -> None:
        """Take what the pool needs before it counts as started (and set ``_finalizer`` to release it)."""

    def _load(self, payload: WorkerPayload) -> None:  # noqa: B027 - a hook most pools need not fill
        """Share the payload with the workers to come; a failure here closes the executor."""

    @abc.abstractmethod
    def _spawn(self) -> None:
        """Start one worker; it joins ``_idle`` (through :meth:`_now_ready`) once it has loaded the payload."""

    @abc.abstractmethod
    def _retire(self, worker: W) -> None:
        """Forget a worker and release it; it may be alive still."""

    @abc.abstractmethod
    def _workers_now(self) -> list[W]:
        """Every worker of the pool at this moment, ready or not."""

    @abc.abstractmethod
    def _begin(self, worker: W, job: Job, attempt: int) -> bool:
        """Hand ``job`` to an idle worker and set its ``running``; False leaves the job at the queue's front."""

    @abc.abstractmethod
    def _collect(self, wait_s: float, *, starting: bool = False) -> None:
        """Wait up to ``wait_s`` for what the workers send (ready, reports, results) or their deaths; handle it all."""

    @abc.abstractmethod
    def _kill(self, worker: W, failure: FailureKind, error: str) -> None:
        """End a running job by killing its worker, report it (:meth:`_finish`) and start a replacement."""

    @abc.abstractmethod
    def _send_answer(self, worker: W, *, stop: bool) -> None:
        """Pass the answer to a report on to the job waiting for it on ``worker``."""

    @abc.abstractmethod
    def _resting_mb(self, worker: W) -> float:
        """The resident memory of a ready worker that runs no job."""

    @abc.abstractmethod
    def _slow_start_error(self, missing: int, workers: int) -> str:
        """The message when ``missing`` of ``workers`` did not start within ``start_timeout_s``."""

    def _check_starting(self, now: float) -> None:  # noqa: B027 - a hook most pools need not fill
        """Raise ExecutorError when the pool cannot start workers any more."""

    def _watch(self, worker: W, now: float) -> float | None:
        """Check a running job against the limits the pool watches itself (the timeout is the base's).

        Return when to look again, or None after killing the job.
        """
        assert worker.running is not None
        return worker.running.deadline

    def _forget(self) -> None:  # noqa: B027 - a hook most pools need not fill
        """Drop the pool's own tables when it closes."""

    # -- for the pools ---------------------------------------------------------------------------------

    def _check_started(self) -> None:
        if self._status != "started":
            what = "call start() first" if self._status == "new" else "it was closed; make a new one"
            raise ExecutorError(f"the {self._TITLE} executor is not running: {what}")

    def _replace(self, worker: W) -> None:
        self._retire(worker)
        if self._status == "started":
            self._spawn()

    def _now_ready(self, worker: W) -> None:
        self._start_failures = 0
        self._idle.append(worker)

    def _start_failed(self, *, starting: bool) -> bool:
        """Count a worker that died before it was ready; True when the pool must give up."""
        self._start_failures += 1
        return starting or self._start_failures >= MAX_START_FAILURES

    def _retry(self, running: Attempt) -> bool:
        """Queue a job whose worker died unasked again, at the front, when it has attempts left."""
        if running.attempts > self._limits.retries:
            return False
        self._jobs[running.job.job_id] = None
        self._queue.appendleft((running.job, running.attempts + 1))
        return True

    def _crash_error(self, why: str, running: Attempt) -> str:
        return f"{why} (attempt {running.attempts} of {self._limits.retries + 1})"

    def _finish(
        self,
        running: Attempt,
        worker: str,
        *,
        ok: bool = False,
        output: TrialOutput | np.ndarray | None = None,
        **outcome: Unpack[Outcome],
    ) -> None:
        """Report the end of a job that ran on ``worker``."""
        self._jobs.pop(running.job.job_id, None)
        job_id, attempts = running.job.job_id, running.attempts
        self._events.append(JobDone(job_id, ok, output, attempts=attempts, worker=worker, **outcome))

    # -- the loop --------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while self._queue and self._idle:
            worker = self._idle.pop()
            job, attempt = self._queue.popleft()
            if self._begin(worker, job, attempt):
                self._jobs[job.job_id] = worker
            else:
                self._queue.appendleft((job, attempt))

    def _enforce(self, now: float) -> float:
        """Kill jobs past their limits; return when the next check is due."""
        self._check_starting(now)
        next_check = now + 3600.0
        for worker in self._workers_now():
            running = worker.running
            if running is None:
                continue
            if now >= running.deadline:
                self._kill(
                    worker,
                    "timeout",
                    f"timeout: the job ran past the limit of {self._limits.timeout_s:g} s (limits.timeout_s) "
                    "and its worker was killed",
                )
                continue
            due = self._watch(worker, now)
            if due is not None:
                next_check = min(next_check, running.deadline, due)
        return next_check

    def _check_memory_limit(self) -> None:
        """Refuse a memory limit that a worker at rest, payload loaded, already exceeds: every job would fail."""
        limit = self._limits.memory_mb
        if limit is None:
            return
        resting = max((self._resting_mb(w) for w in self._idle), default=0.0)
        if resting >= limit:
            raise SpecError(
                f"limits: `memory_mb` is {limit} MB, but {self._NOUN} with the data loaded and no job running "
                f"already holds {resting:.0f} MB; fix: raise execution.memory_mb above {resting * 1.5:.0f}"
            )
