"""Trainers: the `Trainer` ABC, built-in trainers, preprocessing, and the worker-side harness."""

from __future__ import annotations

from ._records import Split, TrialOutput, TrialRequest, WorkerPayload

__all__ = ["Split", "TrialOutput", "TrialRequest", "WorkerPayload"]
