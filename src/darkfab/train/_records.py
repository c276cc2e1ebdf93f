"""Frozen records that cross from the factory to the workers and back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..patch import CodePatch
from ..spec import TaskKind, TrainerSpec


@dataclass(frozen=True)
class WorkerPayload:
    """What a worker receives once: training rows with labels, evaluation rows WITHOUT labels.

    The labels of the validation and sealed-test rows never leave the factory's process.
    """

    task: TaskKind
    feature_types: dict[str, str]  # column -> "numeric" | "categorical"
    n_classes: int  # 0 for regression
    X_train: pd.DataFrame
    y_train: np.ndarray  # encoded class index (int) or float target
    X_valid: pd.DataFrame
    X_test: pd.DataFrame
    threads: int = 1
    latency_rows: int = 20
    classes: tuple[Any, ...] = ()  # original labels, for the registered model to decode with
    private_paths: tuple[str, ...] = ()  # where the labels live (the data source): sandboxed code may not read them
    X_test_perturbed: pd.DataFrame | None = None  # lightly jittered sealed rows, for the memorization probe


@dataclass(frozen=True)
class TrialRequest:
    """One trial to run: a trainer, its parameters, a seed, and the code edit of a script trainer's trial."""

    trial_id: int
    trainer: TrainerSpec
    params: dict[str, Any]
    seed: int = 0
    report_every: int = 0  # boosting trainers report validation predictions every N rounds (0: never)
    cv_folds: int = 0  # built-in trainers also fit this many folds of the training rows (0: none)
    patch: CodePatch | None = None  # a script trainer runs its script with these edits applied


@dataclass(frozen=True)
class TrialOutput:
    """What a finished trial sends back: predictions on validation features, the artifact, costs."""

    valid_predictions: np.ndarray  # (n, n_classes) probabilities, or (n,) values for regression
    artifact: bytes  # the pickled darkfab.train.DarkfabModel
    train_seconds: float
    train_cpu_seconds: float
    latency_ms: tuple[float, ...] = ()  # single-row prediction times
    batch_latency_ms: float = 0.0  # time to predict 1,000 rows, scaled from the validation batch
    steps: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    oof_predictions: np.ndarray | None = None  # out-of-fold predictions on the training rows (cv_folds >= 2)
    oof_folds: np.ndarray | None = None  # the fold of each training row, for the factory to score per fold


Split = Literal["valid", "test", "test_perturbed"]  # test_perturbed: the memorization probe's copies
