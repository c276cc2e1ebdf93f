"""A model fitted on rows that lack some of the task's classes still answers over all of them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from darkfab.spec import TrainerSpec
from darkfab.train import load_model, refit


def _rare_class_rows(n: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    label = np.where(x < -0.4, "a", np.where(x < 0.4, "c", "d")).astype(object)
    label[[150, 170, 185, 200, 220, 235]] = "b"
    return pd.DataFrame({"when": np.arange(n), "x": x, "noise": rng.normal(size=n), "label": label})


def test_a_model_fitted_without_some_classes_spreads_its_columns_over_all_of_them():
    rows = _rare_class_rows()
    train = rows[rows["label"] != "b"].drop(columns=["label"])
    classes = ("a", "b", "c", "d")
    y = np.array([classes.index(v) for v in rows.loc[train.index, "label"]])
    for trainer in ("xgboost", "lightgbm", "logistic_regression", "random_forest"):
        blob = refit(
            task="classification",
            feature_types={"when": "numeric", "x": "numeric", "noise": "numeric"},
            classes=classes,
            X=train,
            y=y,
            trainer=TrainerSpec(name=trainer),
            params={},
            seed=0,
        )
        model = load_model(blob)
        proba = model.predict_proba(rows.drop(columns=["label"]))
        assert proba.shape == (len(rows), 4), trainer
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert np.all(proba[:, 1] == 0.0), trainer
        assert set(model.predict(rows.drop(columns=["label"]))) <= {"a", "c", "d"}
