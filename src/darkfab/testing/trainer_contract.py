"""The contract every trainer passes, run over each built-in by ``tests/train/test_trainer_contract.py``.

Use it for your own trainer the way scikit-learn's ``check_estimator`` is used::

    from darkfab.testing.trainer_contract import TrainerContract

    class TestMine(TrainerContract):
        @pytest.fixture(params=["classification", "regression"])
        def case(self, request): return request.param, TrainerSpec(name="mine", estimator="pkg.mod:Mine")
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd

from ..spec import ParamSpec, TaskKind, TrainerSpec
from ..train import TrialRequest, WorkerPayload, load_model, resolve_trainer, resolved_space, run_here


def messy_payload(task: TaskKind, n: int = 240, seed: int = 0) -> tuple[WorkerPayload, pd.DataFrame, np.ndarray]:
    """Numeric, text and boolean columns with missing values; string labels or a large-scale target."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    frame = pd.DataFrame(
        {
            "x": x,
            "colour": rng.choice(np.array(["red", "green", "blue", None], dtype=object), size=n),
            "count": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 5, size=n)),
            "flag": rng.random(n) < 0.5,
        }
    )
    signal = x + (frame["colour"] == "red").to_numpy()
    if task == "classification":
        y = (signal > 0.3).astype(np.int64)
        classes: tuple[Any, ...] = ("no", "yes")
    else:
        y = 1000.0 * signal + rng.normal(size=n)
        classes = ()
    cut, cut2 = int(n * 0.6), int(n * 0.8)
    types = {"x": "numeric", "colour": "categorical", "count": "numeric", "flag": "numeric"}
    payload = WorkerPayload(
        task=task,
        feature_types=types,
        n_classes=len(classes),
        X_train=frame.iloc[:cut],
        y_train=y[:cut],
        X_valid=frame.iloc[cut:cut2].reset_index(drop=True),
        X_test=frame.iloc[cut2:].reset_index(drop=True),
        latency_rows=2,
        classes=classes,
    )
    return payload, frame.iloc[cut:cut2].reset_index(drop=True), y[cut:cut2]


def middle_of(space: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in space.items():
        if isinstance(v, ParamSpec):
            if v.choices is not None:
                out[k] = v.choices[0]
            else:
                mid = (v.low * v.high) ** 0.5 if v.log else (v.low + v.high) / 2  # type: ignore[operator]
                out[k] = int(round(mid)) if v.type == "int" else float(mid)
        else:
            out[k] = v
    return out


class TrainerContract:
    """Needs a ``case`` fixture returning ``(task, TrainerSpec)``."""

    def _run(self, case: tuple[TaskKind, TrainerSpec], seed: int = 0) -> tuple[Any, ...]:
        task, spec = case
        payload, valid_rows, y_valid = messy_payload(task)
        out = run_here(
            payload,
            TrialRequest(trial_id=1, trainer=spec, params=middle_of(resolved_space(spec, task)), seed=seed),
        )
        return task, payload, valid_rows, y_valid, out

    def test_default_space_is_valid(self, case: tuple[TaskKind, TrainerSpec]) -> None:
        task, spec = case
        trainer = resolve_trainer(spec, task)
        assert task in trainer.tasks
        for name, dim in resolved_space(spec, task).items():
            assert isinstance(name, str) and name
            if isinstance(dim, ParamSpec) and dim.choices is None:
                assert dim.low is not None and dim.high is not None and dim.low <= dim.high

    def test_learns_from_messy_rows(self, case: tuple[TaskKind, TrainerSpec]) -> None:
        task, payload, _, y_valid, out = self._run(case)
        pred = out.valid_predictions
        if task == "classification":
            assert pred.shape == (len(y_valid), payload.n_classes)
            assert np.allclose(pred.sum(axis=1), 1.0) and (pred >= 0).all()
            assert (pred.argmax(axis=1) == y_valid).mean() > 0.7
        else:
            assert pred.shape == (len(y_valid),)
            assert np.corrcoef(pred, y_valid)[0, 1] > 0.8

    def test_artifact_predicts_raw_rows_with_unseen_values(self, case: tuple[TaskKind, TrainerSpec]) -> None:
        task, payload, valid_rows, _, out = self._run(case)
        model = load_model(out.artifact)
        rows = valid_rows.head(5).copy()
        rows.loc[0, "colour"] = "a colour never seen"
        rows.loc[1, "x"] = np.nan
        labels = model.predict(rows)
        assert len(labels) == 5
        if task == "classification":
            assert set(labels) <= set(payload.classes)
        assert np.allclose(model.predict_raw(valid_rows), out.valid_predictions)
        assert pickle.loads(pickle.dumps(model)).features == model.features

    def test_same_seed_same_predictions(self, case: tuple[TaskKind, TrainerSpec]) -> None:
        a = self._run(case, seed=3)[-1].valid_predictions
        b = self._run(case, seed=3)[-1].valid_predictions
        assert np.allclose(a, b)

    def test_reports_costs(self, case: tuple[TaskKind, TrainerSpec]) -> None:
        out = self._run(case)[-1]
        assert out.train_seconds >= 0 and out.train_cpu_seconds >= 0
        assert len(out.latency_ms) == 2 and all(v > 0 for v in out.latency_ms) and out.batch_latency_ms > 0
