"""The worker side of a trial: preprocessing cached per worker, fit, predict validation features, time it.

A worker calls :func:`prepare` once with the payload, then :func:`run_trial` and :func:`predict` per job.
Nothing here sees a validation or sealed-test label.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np

from ._model import DarkfabModel, load_model
from ._prep import SCALINGS, Flavour, Preprocessor
from ._records import Split, TrialOutput, TrialRequest, WorkerPayload
from ._trainers import FitContext, Report, Trainer, resolve_trainer
from .script import ScriptTrainer


class WorkerState:
    """A worker's copy of the data, with each preprocessing flavour fitted once and cached."""

    def __init__(self, payload: WorkerPayload) -> None:
        self.payload = payload
        self._prepared: dict[tuple[Flavour, str], tuple[Preprocessor, np.ndarray, np.ndarray]] = {}
        self.latency_rows = [payload.X_valid.iloc[[i]] for i in range(min(payload.latency_rows, len(payload.X_valid)))]

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


def run_here(payload: WorkerPayload, request: TrialRequest) -> TrialOutput:
    """One trial in the caller's own process (the refit, a trainer's contract test): its thread pools are limited
    to the payload's threads for this fit only and then put back, where :func:`prepare` limits a worker for good."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=payload.threads):
        return run_trial(WorkerState(payload), request)


def _never(step: int, predictions: np.ndarray) -> bool:
    return False


def fit_model(state: WorkerState, request: TrialRequest, report: Report = _never) -> tuple[DarkfabModel, float, float]:
    """Train one candidate: the model, its training wall and CPU seconds as this process measured them.

    Raises TrialPruned when ``report`` says stop; any other exception is the trial's.
    """
    model, train_s, cpu_s, _, _, _ = _fit(state, request, report)
    return model, train_s, cpu_s


def _fit(
    state: WorkerState, request: TrialRequest, report: Report
) -> tuple[DarkfabModel, float, float, Trainer, FitContext, dict[str, Any]]:
    """:func:`fit_model`, also handing back the trainer, its context and the params it was fitted with."""
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
        patch=request.patch,
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
    return model, train_s, cpu_s, trainer, ctx, params


def run_trial(state: WorkerState, request: TrialRequest, report: Report = _never) -> TrialOutput:
    """Train one candidate and measure it in this process (built-in trainers: no candidate code runs here)."""
    p = state.payload
    model, train_s, cpu_s, trainer, ctx, params = _fit(state, request, report)
    t0 = time.perf_counter()
    valid_predictions = model.predict_raw(p.X_valid)
    batch_ms = (time.perf_counter() - t0) * 1000.0 * 1000.0 / max(1, len(p.X_valid))
    latency: list[float] = []
    for row in state.latency_rows:
        t0 = time.perf_counter()
        model.predict_raw(row)
        latency.append((time.perf_counter() - t0) * 1000.0)
    oof, folds = (None, None)
    if request.cv_folds >= 2 and type(trainer) is not ScriptTrainer and request.trainer.estimator is None:
        oof, folds = _out_of_fold(trainer, ctx, model, params, request.cv_folds)
    return TrialOutput(
        oof_predictions=oof,
        oof_folds=folds,
        valid_predictions=valid_predictions,
        artifact=model.to_bytes(),
        train_seconds=train_s,
        train_cpu_seconds=cpu_s,
        latency_ms=tuple(latency),
        batch_latency_ms=batch_ms,
    )


def _out_of_fold(
    trainer: Trainer, ctx: FitContext, model: DarkfabModel, params: dict[str, Any], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions on each training row by a model fitted without its fold (the preprocessing is shared).

    Only for the factory's own trainers: the factory scores these against the training labels.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    y = ctx.y
    stratify = ctx.task == "classification" and np.bincount(y.astype(int)).min() >= k
    splitter = (
        StratifiedKFold(k, shuffle=True, random_state=ctx.seed)
        if stratify
        else KFold(k, shuffle=True, random_state=ctx.seed)
    )
    folds = np.zeros(len(y), dtype=np.int64)
    oof: np.ndarray | None = None
    for i, (fit_rows, held) in enumerate(splitter.split(ctx.X, y)):
        sub = replace(ctx, X=ctx.X[fit_rows], y=y[fit_rows], X_valid=ctx.X[held], report=_never, report_every=0)
        part = DarkfabModel(
            task=model.task,
            features=model.features,
            feature_types=model.feature_types,
            classes=model.classes,
            prep=model.prep,
            estimator=trainer.fit(sub, dict(params)),
            trainer=model.trainer,
            params=model.params,
        ).predict_matrix(ctx.X[held])
        if oof is None:
            oof = np.zeros((len(y), *part.shape[1:]))
        oof[held] = part
        folds[held] = i
    assert oof is not None, "k >= 2 folds always hold rows"
    return oof, folds


def predict(state: WorkerState, artifact: bytes, split: Split = "test") -> np.ndarray:
    """Predictions of a stored model on one split's features (the factory scores them)."""
    model = load_model(artifact)
    payload = state.payload
    if split == "test_perturbed" and payload.X_test_perturbed is None:
        raise ValueError("this worker holds no perturbed copy of the sealed rows")
    frames = {"test": payload.X_test, "valid": payload.X_valid, "test_perturbed": payload.X_test_perturbed}
    frame = frames[split]
    return model.predict_raw(frame)
