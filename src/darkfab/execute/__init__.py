"""Executors: run each trial in isolation with hard limits."""

from __future__ import annotations

from ._base import Event, Executor, FailureKind, Job, JobDone, JobReport, Limits, PredictJob, TrainJob
from ._local import LocalExecutor
from ._registry import EXECUTORS, make_executor

__all__ = [
    "EXECUTORS",
    "Event",
    "Executor",
    "FailureKind",
    "Job",
    "JobDone",
    "JobReport",
    "Limits",
    "LocalExecutor",
    "PredictJob",
    "TrainJob",
    "make_executor",
]
