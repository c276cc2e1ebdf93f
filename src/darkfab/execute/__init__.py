"""Executors: run each trial in isolation with hard limits."""

from __future__ import annotations

from ._base import Event, Executor, FailureKind, Job, JobDone, JobReport, Limits, PredictJob, TrainJob

__all__ = ["Event", "Executor", "FailureKind", "Job", "JobDone", "JobReport", "Limits", "PredictJob", "TrainJob"]
