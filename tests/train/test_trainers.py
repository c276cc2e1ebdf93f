from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from darkfab.data import load_dataset
from darkfab.errors import SpecError, TrialPruned
from darkfab.spec import TrainerSpec, spec_from_dict
from darkfab.train import TrialRequest, WorkerPayload, load_model, prepare, resolved_space, run_trial


def payload_for(d, latency_rows=3):
    return WorkerPayload(
        task=d.task,
        feature_types=d.feature_types,
        n_classes=d.n_classes,
        X_train=d.X_train,
        y_train=d.y_train,
        X_valid=d.X_valid,
        X_test=d.X_test,
        latency_rows=latency_rows,
        classes=d.classes,
    )


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": x,
            "colour": rng.choice(["red", "green", "blue", None], size=n),
            "n": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 5, size=n)),
            "flag": rng.random(n) < 0.5,
        }
    )
    df["label"] = np.where(x + (df["colour"] == "red") > 0.3, "yes", "no")
    df["y"] = 1000.0 * x + 50 * (df["colour"] == "blue") + rng.normal(size=n)
    p = tmp_path_factory.mktemp("d") / "rows.csv"
    df.to_csv(p, index=False)
    return p, df


def test_boosters_report_and_stop_when_told(messy):
    path, _ = messy
    d = load_dataset(spec_from_dict({"name": "t", "data": {"source": str(path), "target": "label", "exclude": ["y"]}}))
    state = prepare(payload_for(d))
    for name in ("lightgbm", "xgboost"):
        steps = []

        def report(step, preds, steps=steps):
            steps.append(step)
            assert preds.shape == (len(d.X_valid), 2)
            return step >= 20

        with pytest.raises(TrialPruned):
            run_trial(
                state,
                TrialRequest(trial_id=1, trainer=TrainerSpec(name=name), params={"n_estimators": 100}, report_every=10),
                report,
            )
        assert steps == [10, 20], name


def test_estimator_by_import_path_and_unknown_names():
    d = load_dataset(spec_from_dict({"name": "t", "data": {"source": "sklearn:iris"}}))
    state = prepare(payload_for(d))
    ts = TrainerSpec(name="tree", estimator="sklearn.tree:DecisionTreeClassifier")
    out = run_trial(state, TrialRequest(trial_id=1, trainer=ts, params={"max_depth": 3}))
    assert load_model(out.artifact).predict(d.X_test).shape == (len(d.X_test),)
    with pytest.raises(SpecError, match="unknown trainer 'forest'.*random_forest"):
        resolved_space(TrainerSpec(name="forest"), "classification")
    with pytest.raises(SpecError, match="cannot do regression"):
        resolved_space(TrainerSpec(name="logistic_regression"), "regression")
    with pytest.raises(SpecError, match="cannot import"):
        resolved_space(TrainerSpec(name="x", estimator="nope.module:Thing"), "classification")
