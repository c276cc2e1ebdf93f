"""Spec to part: what a factory file means for each part it drives (executor, worker payload, reward, folds)."""

from __future__ import annotations

import os
import socket
from typing import Any

from ..data import Dataset, jittered
from ..evaluate import CustomMetric, RewardModel, compute_metrics, load_custom_metrics
from ..execute import Executor, Limits, make_executor
from ..spec import Direction, FactorySpec
from ..store import Store
from ..train import WorkerPayload

CV_ROWS = ((500, 5), (1_000, 3))
"""(most labelled rows, folds) of `search.cv: auto`: small data gets k-fold scores, larger data one split."""


def cv_folds_for(spec: FactorySpec, data: Dataset, time_s: float | None) -> int:
    """Training folds each built-in trial also fits, so the search's score is not one small split's luck."""
    chosen = spec.search.cv
    if len(spec.search.objectives) > 1:
        return 0  # multi-objective searches compare several figures; they stay on the validation split
    if chosen != "auto":
        return int(chosen)
    rows = len(data.y_train) + len(data.y_valid)
    for most, folds in CV_ROWS:
        if rows <= most:
            return min(folds, 3) if time_s is not None and time_s < 30 else folds  # a short budget: fewer fits
    return 0


def default_owner(role: str, factory: str) -> str:
    """Lease owner of this process: a rerun of `darkfab run` on the same host takes its own leases back."""
    host = socket.gethostname()
    return f"{role}@{host}/{factory}" if role == "run" else f"{role}@{host}/{os.getpid()}"


def worker_payload(data: Dataset, spec: FactorySpec) -> WorkerPayload:
    """Training rows with labels; validation and sealed-test rows WITHOUT labels."""
    return WorkerPayload(
        task=data.task,
        feature_types=dict(data.feature_types),
        n_classes=data.n_classes,
        X_train=data.X_train,
        y_train=data.y_train,
        X_valid=data.X_valid,
        X_test=data.X_test,
        threads=spec.execution.threads,
        latency_rows=spec.execution.latency_rows,
        classes=data.classes,
        private_paths=private_paths(spec),
        X_test_perturbed=jittered(data.X_test, data.X_train, seed=spec.search.seed),
    )


def private_paths(spec: FactorySpec) -> tuple[str, ...]:
    """The data source's file (a CSV, Parquet or SQLite file), which sandboxed code must never read."""
    source = spec.data.source
    if source.startswith("sqlite:"):
        source = source.split("///", 1)[-1]
    path = os.path.realpath(source) if not source.startswith("sklearn:") else ""
    return (path,) if path and os.path.exists(path) else ()


def limits_of(spec: FactorySpec) -> Limits:
    e = spec.execution
    return Limits(timeout_s=e.trial_timeout, memory_mb=e.memory_mb, retries=e.retries)


def executor_options(spec: FactorySpec) -> dict[str, Any]:
    """Keyword options of the executor named by ``execution.backend``."""
    ex = spec.execution
    if ex.backend == "ray":
        return {
            "address": ex.address,
            "cpus_per_trial": ex.cpus_per_trial,
            "gpus_per_trial": ex.gpus_per_trial,
            "memory_mb": ex.memory_mb,
        }
    return {}


def started_executor(spec: FactorySpec, data: Dataset) -> Executor:
    """The executor ``execution.backend`` names, started on this data (the caller closes it)."""
    executor = make_executor(spec.execution.backend, **executor_options(spec))
    try:
        executor.start(worker_payload(data, spec), workers=spec.execution.workers, limits=limits_of(spec))
    except BaseException:
        executor.close()
        raise
    return executor


def metric_direction(spec: FactorySpec, data: Dataset, metric: str) -> Direction:
    if metric == spec.primary_metric(data.task):
        return spec.direction(data.task)
    return spec.metric_direction(metric)


def custom_metrics(spec: FactorySpec) -> dict[str, CustomMetric]:
    """The factory file's own metrics, imported (Python caches the modules, so this is cheap to repeat)."""
    return load_custom_metrics(spec.objective.metrics)


def is_script(spec: FactorySpec, trainer: str) -> bool:
    """Whether a trainer is code the factory did not write (a user's script)."""
    return any(t.name == trainer and t.script for t in spec.trainers)


def reward_model(spec: FactorySpec, data: Dataset, store: Store | None = None) -> RewardModel:
    """The reward model a factory file declares, for the data's task; with ``objective.reward: learned`` and a
    ``store``, the weights of the last learned reward that passed its gate (the declared ones until then)."""
    weights = dict(spec.objective.weights)
    if store is not None and spec.objective.reward == "learned":
        from ._teach import learned_weights

        try:
            fid = store.get_factory(spec.name).id
        except LookupError:
            fid = None
        learned = learned_weights(store, fid) if fid is not None else None
        weights = learned or weights
    return RewardModel(
        task=data.task,
        primary=spec.primary_metric(data.task),
        direction=spec.direction(data.task),
        weights=weights,
        constraints=list(spec.objective.constraints),
        references=_references(data),
        custom=custom_metrics(spec),
    )


def _references(data: Dataset) -> dict[str, float]:
    if data.task != "regression":
        return {}
    base = compute_metrics("regression", data.y_valid, data.baseline_predictions(len(data.y_valid)), n_classes=0)
    return {k: float(base[k]) for k in ("rmse", "mae") if k in base and base[k] > 0}
