"""The Executor contract: run trials in isolation, report intermediate scores, enforce limits."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import SpecError
from ..train import Split, TrialOutput, TrialRequest, WorkerPayload

FailureKind = Literal["exception", "timeout", "memory", "crash", "cancelled", "pruned"]


@dataclass(frozen=True)
class Limits:
    """Per-job limits every executor enforces."""

    timeout_s: float = 600.0  # wall seconds; the worker is killed and replaced past it
    memory_mb: int | None = 4096  # resident memory of the worker; killed past it
    retries: int = 1  # extra attempts after an infrastructure fault (a worker that died unasked)

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise SpecError(f"limits: `timeout_s` must be a positive number of seconds, got {self.timeout_s!r}")
        if self.memory_mb is not None and not self.memory_mb > 0:
            raise SpecError(f"limits: `memory_mb` must be positive, or None for no limit, got {self.memory_mb!r}")
        if self.retries < 0:
            raise SpecError(f"limits: `retries` must be 0 or more, got {self.retries!r}")


@dataclass(frozen=True)
class TrainJob:
    job_id: str
    request: TrialRequest


@dataclass(frozen=True)
class PredictJob:
    """Score a stored artifact on the features of one split (the gate uses split='test')."""

    job_id: str
    artifact: bytes
    split: Split = "test"


Job = TrainJob | PredictJob


@dataclass(frozen=True)
class JobReport:
    """An intermediate report from a running trial; the executor waits for :meth:`Executor.answer`."""

    job_id: str
    step: int
    predictions: np.ndarray


@dataclass(frozen=True)
class JobDone:
    """A job ended, exactly once per submitted job.

    ``attempts`` counts the runs: 2 after one retry, 0 for a job cancelled before it started.
    """

    job_id: str
    ok: bool
    output: TrialOutput | np.ndarray | None  # TrialOutput for a TrainJob, predictions for a PredictJob
    failure: FailureKind | None = None
    error: str | None = None  # one line: what went wrong
    log_tail: str = ""  # last lines the job printed (stdout and stderr, C level included)
    attempts: int = 1
    worker: str = ""
    cpu_seconds: float = 0.0
    peak_rss_mb: float = 0.0


Event = JobReport | JobDone


class Executor(abc.ABC):
    """Runs jobs in isolation. Used from one thread: the factory's loop."""

    @abc.abstractmethod
    def start(self, payload: WorkerPayload, *, workers: int, limits: Limits) -> None:
        """Start workers and ship the payload to each once."""

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Queue a job; it starts when a worker is free."""

    @abc.abstractmethod
    def poll(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds and return what happened: reports and finished jobs."""

    @abc.abstractmethod
    def answer(self, job_id: str, *, stop: bool) -> None:
        """Reply to a :class:`JobReport`: ``stop=True`` prunes the trial (it ends with failure 'pruned').

        Does nothing when the job no longer waits (it was killed or cancelled since its report).
        """

    @abc.abstractmethod
    def cancel(self, job_id: str, reason: str) -> None:
        """Stop a queued or running job; it ends with failure 'cancelled' and the reason.

        Does nothing for a job that has already ended or was never submitted.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop every worker. Safe to call twice."""

    @property
    @abc.abstractmethod
    def capacity(self) -> int:
        """How many jobs can run at once."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Jobs submitted and not yet reported done."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
