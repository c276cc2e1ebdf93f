"""Real data sets darkfab once failed on (issue 12): a count target, a class the training rows lack, tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from darkfab.data import load_dataset
from darkfab.spec import load_spec

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


@pytest.mark.slow
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


def _visits(n: int = 1500) -> pd.DataFrame:
    """A count target like statsmodels' randhie `mdvis` (doctor visits): whole numbers, a long rare tail.

    25 distinct values in 1,500 rows: few against the rows (under 2%), so darkfab once took them for classes.
    """
    rng = np.random.default_rng(1)
    x = rng.normal(size=n)
    visits = rng.poisson(np.exp(1.3 + 0.6 * x))
    return pd.DataFrame({"x": x, "noise": rng.normal(size=n), "visits": visits})


@pytest.mark.slow
def test_a_count_target_with_many_values_is_regression_and_says_why(cli, tmp_path):
    frame = _visits()
    assert 20 < frame["visits"].nunique() <= 0.02 * len(frame) and frame["visits"].dtype.kind == "i"
    frame.to_csv(tmp_path / "rows.csv", index=False)
    body = factory_text(name="visits", source="rows.csv", target="visits", trials=4)
    (tmp_path / "factory.yaml").write_text(body.replace("logistic_regression", "linear_regression"))
    r = cli.json("run", "factory.yaml")
    assert r["task"] == "regression" and r["metric"] == "rmse"
    assert "count or amount" in r["task_reason"] and "task:" in r["task_reason"]
    assert r["champion"] is not None, r["gate"]
    status = cli.json("status")
    assert status["task"] == {"task": "regression", "reason": r["task_reason"]}
    assert "task: regression (inferred:" in " ".join(cli("status").stdout.split())


@pytest.mark.slow
def test_a_factory_file_can_still_make_a_count_target_classes(cli, tmp_path):
    _visits().to_csv(tmp_path / "rows.csv", index=False)
    body = factory_text(name="visits", source="rows.csv", target="visits", trials=4)
    (tmp_path / "factory.yaml").write_text("task: classification\n" + body)
    summary = " ".join(cli("run", "factory.yaml").stdout.split())
    assert "task: classification (set by `task:` in the factory file)" in summary
    r = cli.json("status")
    assert r["task"]["task"] == "classification"
    failed = [t for t in cli.json("trials", "factory.yaml") if t["state"] == "failed"]
    assert not failed, failed  # rare counts are classes some splits and folds lack: still no failed trial


def _tiny(tmp_path, extra: str = "") -> pd.DataFrame:
    """40 rows like statsmodels' `statecrime` or `ccard`: the sealed test holds 8 of them."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    frame = pd.DataFrame({"x": x, "z": rng.normal(size=40), "y": 50 + 10 * x + rng.normal(0, 12, 40)})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(
        f"name: tiny\ndata: {{source: rows.csv, target: y}}\ntrainers: [linear_regression]\n{extra}"
        "budget: {trials: 3}\nexecution: {latency_rows: 2}\ngate: {bootstrap: 300}\n"
    )
    return frame


@pytest.mark.slow
def test_a_tiny_data_set_gets_a_first_champion_with_its_weak_evidence_stated(cli, tmp_path):
    frame = _tiny(tmp_path)
    summary = " ".join(cli("run", "factory.yaml").stdout.split())
    assert "new champion: version 1" in summary
    assert "gate: first champion on weak evidence: the sealed test holds 8 rows" in summary
    gate = cli.json("lineage", "1")["lineage"]["gate"]
    assert gate["reason"].startswith("first champion on weak evidence")
    frame.drop(columns=["y"]).head(5).to_csv(tmp_path / "new.csv", index=False)
    cli("predict", "factory.yaml", "new.csv", "-o", "out.csv")
    assert len(pd.read_csv(tmp_path / "out.csv")) == 5
    r = cli.json("run", "factory.yaml")  # a second campaign faces the champion with the usual evidence
    assert r["gate"]["weak_evidence"] is False and r["champion"]["version"] == 1


def test_a_tiny_data_set_with_nothing_to_register_says_why_at_predict(cli, tmp_path):
    frame = _tiny(tmp_path, extra="objective: {constraints: ['model_size_mb <= 0.000001']}\n")
    r = cli.json("run", "factory.yaml")
    assert r["champion"] is None and "no feasible candidate" in r["gate"]["reason"]
    frame.drop(columns=["y"]).head(5).to_csv(tmp_path / "new.csv", index=False)
    out = cli("predict", "factory.yaml", "new.csv", "-o", "out.csv", check=False)
    assert out.returncode != 0
    said = " ".join(out.stderr.split())
    assert "no model version is registered yet (the last gate: no feasible candidate in this campaign)" in said


def _weak_signal(tmp_path) -> None:
    """1,000 rows where y follows x weakly; on the sealed rows (found through the public split) more weakly still,
    as on statsmodels' `fair`, where the best models beat the class shares by 4 points of accuracy and one
    sealed draw showed 0.5: the strict gate refused every first champion, and the factory had no model."""
    n = 1000
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=n), rng.normal(size=n)
    frame = pd.DataFrame({"x": x, "z": z, "y": 0.6 * x + rng.normal(size=n)})
    frame.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(
        "name: weak\ndata: {source: rows.csv, target: y}\ntrainers: [linear_regression]\n"
        "budget: {trials: 4}\nexecution: {latency_rows: 2}\n"
    )
    data = load_dataset(load_spec(tmp_path / "factory.yaml"))
    sealed = frame.reset_index().merge(data.X_test, on=["x", "z"])["index"].to_numpy()
    assert len(sealed) == len(data.y_test) == 200
    frame.loc[sealed, "y"] = 0.3 * x[sealed] + np.random.default_rng(1).normal(size=len(sealed))
    frame.to_csv(tmp_path / "rows.csv", index=False)


def test_a_real_but_small_gain_the_sealed_rows_cannot_show_passes_on_the_validation_rows_corrected(cli, tmp_path):
    _weak_signal(tmp_path)
    r = cli.json("run", "factory.yaml")
    gate = r["gate"]
    assert gate["passed"] and gate["weak_evidence"] and r["champion"]["version"] == 1, gate["reason"]
    assert gate["delta"] > 0.0 and gate["p_better"] < 0.9  # the sealed rows alone would have refused it
    assert gate["reason"].startswith("first champion on the validation rows' evidence")
    assert "on the 200 validation rows (labels no trial sees)" in gate["reason"]
    assert "the best of 4 candidates searched" in gate["reason"]
    lineage = cli.json("lineage", "1")["lineage"]["gate"]
    assert lineage["reason"] == gate["reason"]


def test_of_equally_accurate_candidates_the_gate_takes_the_surer_one(cli, tmp_path):
    """Accuracy on a few dozen validation rows ties often (on `fair` 70 of 600 trials shared one figure); the
    gate held the earliest of them, now the one with the lowest validation log loss."""
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=200), rng.normal(size=200)
    label = np.where(x + 0.4 * rng.normal(size=200) > 0, "yes", "no")
    pd.DataFrame({"x": x, "z": z, "label": label}).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(
        "name: ties\ndata: {source: rows.csv, target: label}\ntrainers: [logistic_regression]\n"
        "budget: {trials: 12}\nsearch: {cv: 0}\nexecution: {latency_rows: 2}\n"
    )
    r = cli.json("run", "factory.yaml")
    assert r["champion"] is not None, r["gate"]
    done = [t for t in cli.json("trials", "factory.yaml") if t["state"] == "completed" and t["feasible"]]
    best = max(t["reward"] for t in done)
    tied = [t for t in done if t["reward"] == best]
    assert len(tied) >= 2, [(t["trainer"], t["value"]) for t in done]  # the data make a tie
    surest = min(tied, key=lambda t: t["metrics"]["log_loss"])
    assert r["gate"]["trial"] == surest["id"], [(t["id"], t["metrics"]["log_loss"]) for t in tied]


RIDGE_SCRIPT = """
from sklearn.linear_model import Ridge


def train(X, y, X_valid, params, report):
    return Ridge(alpha=params["alpha"]).fit(X, y)
"""


def test_a_training_script_gets_no_first_champion_on_the_validation_rows(cli, tmp_path):
    """The validation rows vouch only for models the factory built: a script's code runs in the workers, and a
    defence against it reading labels it should not see must not hang on the validation rows too."""
    _weak_signal(tmp_path)
    (tmp_path / "ridge.py").write_text(RIDGE_SCRIPT)
    body = (tmp_path / "factory.yaml").read_text()
    script = "trainers: [{name: mine, script: ridge.py, space: {alpha: {low: 0.01, high: 1.0, log: true}}}]\n"
    (tmp_path / "factory.yaml").write_text(body.replace("trainers: [linear_regression]\n", script))
    r = cli.json("run", "factory.yaml")
    gate = r["gate"]
    assert r["champion"] is None and not gate["passed"] and not gate["weak_evidence"]
    assert gate["delta"] > 0.0 and gate["p_better"] < 0.9  # the same evidence a built-in model passed on
    assert "a training script's model is not passed on the validation rows" in gate["reason"]
    # the factory's own trainer, next campaign: its model passes on the validation rows, as the best of every
    # candidate picked from them so far (the script's campaign looked at them too)
    (tmp_path / "factory.yaml").write_text(body)
    again = cli.json("run", "factory.yaml")
    searched = len([t for t in cli.json("trials", "factory.yaml") if t["state"] == "completed"])
    assert again["gate"]["weak_evidence"] and again["champion"]["trainer"] == "linear_regression"
    assert searched > 4 and f"the best of {searched} candidates searched" in again["gate"]["reason"]
