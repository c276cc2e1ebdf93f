"""Refitting a gated configuration on more rows, in the factory's own process (built-in trainers only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..spec import TaskKind, TrainerSpec
from ._harness import run_here
from ._records import TrialRequest, WorkerPayload
from ._trainers import BUILTINS


def can_refit(trainer: TrainerSpec) -> bool:
    """Only the factory's own trainers are refit here: a script or an imported estimator is code the factory
    did not write, and it trains in a sandbox that never holds the validation or sealed-test labels."""
    return trainer.name in BUILTINS and trainer.script is None and trainer.estimator is None


def refit(
    *,
    task: TaskKind,
    feature_types: dict[str, str],
    classes: tuple[Any, ...],
    X: pd.DataFrame,
    y: np.ndarray,
    trainer: TrainerSpec,
    params: dict[str, Any],
    seed: int,
    threads: int = 1,
) -> bytes:
    """The pickled model of ``trainer`` with ``params`` fitted on ``X``, ``y`` (preprocessing refitted too)."""
    payload = WorkerPayload(
        task=task,
        feature_types=feature_types,
        n_classes=len(classes),
        X_train=X,
        y_train=y,
        X_valid=X.iloc[:1],
        X_test=X.iloc[:0],
        threads=threads,
        latency_rows=0,
        classes=classes,
    )
    request = TrialRequest(trial_id=0, trainer=trainer, params=dict(params), seed=seed)
    return run_here(payload, request).artifact  # the caller's thread pools are put back after
