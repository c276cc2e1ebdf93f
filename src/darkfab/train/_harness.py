"""The worker side of a trial: preprocessing cached per worker, fit, predict validation features, time it.

A worker calls :func:`prepare` once with the payload, then :func:`run_trial` and :func:`predict` per job.
Nothing here sees a validation or sealed-test label.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._model import DarkfabModel, load_model
from ._prep import SCALINGS, Flavour, Preprocessor
from ._records import Split, TrialOutput, TrialRequest, WorkerPayload
from ._trainers import FitContext, Report, resolve_trainer


class WorkerState:
    """A worker's copy of the data, with each preprocessing flavour fitted once and cached."""

    def __init__(self, payload: WorkerPayload) -> None:
        self.payload = payload
        self._prepared: dict[tuple[Flavour, str], tuple[Preprocessor, np.ndarray, np.ndarray]] = {}
        self._latency_rows = [payload.X_valid.iloc[[i]] for i in range(min(payload.latency_rows, len(payload.X_valid)))]

    def prepared(self, flavour: Flavour, scaling: str = "standard") -> tuple[Preprocessor, np.ndarray, np.ndarray]:
        key = (flavour, scaling)
        if key not in self._prepared:
            if scaling not in SCALINGS:
                raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
            p = self.payload
            prep = Preprocessor(p.feature_types, flavour, scaling).fit(p.X_train)  # type: ignore[arg-type]
            self._prepared[key] = (prep, prep.transform(p.X_train), prep.transform(p.X_valid))
        return self._prepared[key]


def prepare(payload: WorkerPayload) -> WorkerState:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(payload.threads)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    return WorkerState(payload)


def _never(step: int, predictions: np.ndarray) -> bool:
    return False


def run_trial(state: WorkerState, request: TrialRequest, report: Report = _never) -> TrialOutput:
    """Train one candidate. Raises TrialPruned when ``report`` says stop; any other exception is the trial's."""
    p = state.payload
    trainer = resolve_trainer(request.trainer, p.task)
    params: dict[str, Any] = dict(request.params)
    scaling = str(params.pop("scaling", "standard")) if trainer.flavour == "linear" else "standard"
    prep, X, X_valid = state.prepared(trainer.flavour, scaling)
    ctx = FitContext(
        task=p.task,
        n_classes=p.n_classes,
        X=X,
        y=p.y_train,
        X_valid=X_valid,
        seed=request.seed,
        threads=p.threads,
        report=report,
        report_every=request.report_every,
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    estimator = trainer.fit(ctx, params)
    train_s, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
    model = DarkfabModel(
        task=p.task,
        features=tuple(p.X_train.columns),
        feature_types=dict(p.feature_types),
        classes=tuple(p.classes),
        prep=prep,
        estimator=estimator,
        trainer=request.trainer.name,
        params=params,
    )
    t0 = time.perf_counter()
    valid_predictions = model.predict_raw(p.X_valid)
    batch_ms = (time.perf_counter() - t0) * 1000.0 * 1000.0 / max(1, len(p.X_valid))
    latency: list[float] = []
    for row in state._latency_rows:
        t0 = time.perf_counter()
        model.predict_raw(row)
        latency.append((time.perf_counter() - t0) * 1000.0)
    return TrialOutput(
        valid_predictions=valid_predictions,
        artifact=model.to_bytes(),
        train_seconds=train_s,
        train_cpu_seconds=cpu_s,
        latency_ms=tuple(latency),
        batch_latency_ms=batch_ms,
    )


def predict(state: WorkerState, artifact: bytes, split: Split = "test") -> np.ndarray:
    """Predictions of a stored model on one split's features (the factory scores them)."""
    model = load_model(artifact)
    payload = state.payload
    if split == "test_perturbed" and payload.X_test_perturbed is None:
        raise ValueError("this worker holds no perturbed copy of the sealed rows")
    frames = {"test": payload.X_test, "valid": payload.X_valid, "test_perturbed": payload.X_test_perturbed}
    frame = frames[split]
    return model.predict_raw(frame)
