"""Executors: run each trial in isolation with hard limits.

:class:`RayExecutor` imports Ray only when it is made, so importing this package never does.
"""

from __future__ import annotations

from ._base import Event, Executor, FailureKind, Job, JobDone, JobReport, Limits, PredictJob, TrainJob
from ._local import LocalExecutor
from ._ray import RayExecutor
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
    "RayExecutor",
    "TrainJob",
    "make_executor",
]
