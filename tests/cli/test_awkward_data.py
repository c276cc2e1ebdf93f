"""Real data sets darkfab once failed on (issue 12): a count target, a class the training rows lack, tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .conftest import factory_text


def _rare_class_rows(n: int = 240) -> pd.DataFrame:
    """Classes a, c, d by a rule on x; class b only in the newest rows (validation and sealed test).

    With `time: when` the oldest 60% train, so every model is fitted without class b, whose code (1) sits
    between codes the training rows hold: XGBoost refuses such gaps unless the labels are re-coded.
    """
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    label = np.where(x < -0.4, "a", np.where(x < 0.4, "c", "d")).astype(object)
    label[[150, 170, 185, 200, 220, 235]] = "b"
    return pd.DataFrame({"when": np.arange(n), "x": x, "noise": rng.normal(size=n), "label": label})


def test_a_class_absent_from_the_training_rows_is_scored_with_probability_zero(cli, tmp_path):
    frame = _rare_class_rows()
    frame.to_csv(tmp_path / "rows.csv", index=False)
    body = factory_text(name="rare", source="rows.csv", target="label", trials=6, extra_data=", time: when")
    body = body.replace("  - name: logistic_regression\n", "  - name: logistic_regression\n  - name: xgboost\n")
    body = body.replace("search: {proposer: tpe,", "search: {cv: 3, proposer: tpe,")
    (tmp_path / "factory.yaml").write_text(body)
    r = cli.json("run", "factory.yaml", timeout=300)
    assert r["task"] == "classification"
    assert r["champion"] is not None, r["gate"]
    trials = cli.json("trials", "factory.yaml")
    failed = [t for t in trials if t["state"] == "failed"]
    assert not failed, failed
    assert {"lightgbm", "xgboost", "logistic_regression"} <= {t["trainer"] for t in trials}
    frame.drop(columns=["label", "when"]).tail(20).to_csv(tmp_path / "new.csv", index=False)
    cli("predict", "factory.yaml", "new.csv", "-o", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20 and set(out["label"]) <= {"a", "c", "d"}  # never a class it was not shown
