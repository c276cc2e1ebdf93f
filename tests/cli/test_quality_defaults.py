"""A factory file naming only its data runs well: task-aware default trainers, the whole time spent, a refit."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from darkfab.spec import default_trainers, load_spec, with_overrides


def _diabetes_csv(path):
    frame = load_diabetes(as_frame=True).frame
    frame.to_csv(path, index=False)
    return frame


def test_default_trainers_fit_the_task_and_size():
    regression = [t.name for t in default_trainers("regression", 400)]
    classification = [t.name for t in default_trainers("classification", 400)]
    assert "logistic_regression" not in regression and "linear_regression" in regression
    assert "logistic_regression" in classification and "linear_regression" not in classification
    assert "random_forest" not in [t.name for t in default_trainers("classification", 200_000)]
    # a kernel SVM for small classification sets only (its fit grows with the square of the rows)
    assert "svm" in classification and "svm" not in regression
    assert "svm" not in [t.name for t in default_trainers("classification", 20_000)]


def test_time_without_a_file_budget_has_no_trial_cap(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("name: x\ndata: {source: sklearn:diabetes}\n")
    spec = load_spec(p)
    assert (spec.budget.trials, spec.budget.time) == (50, 600.0)  # no --time: the sensible default stays
    timed = with_overrides(spec, time="20s")
    assert (timed.budget.trials, timed.budget.time) == (None, 20.0)
    assert "trainers" not in timed.model_fields_set  # still chosen by task when the data is read
    p.write_text("name: x\ndata: {source: sklearn:diabetes}\nbudget: {trials: 7}\n")
    kept = with_overrides(load_spec(p), time="20s")
    assert (kept.budget.trials, kept.budget.time) == (7, 20.0)  # a trial budget the file sets is kept


@pytest.mark.slow
def test_regression_factory_without_trainers_runs_end_to_end(cli, tmp_path):
    frame = _diabetes_csv(tmp_path / "diabetes.csv")
    (tmp_path / "factory.yaml").write_text("name: diab\ndata: {source: diabetes.csv, target: target}\n")
    r = cli.json("run", "factory.yaml", "--time", "20s", timeout=240)
    assert r["task"] == "regression" and r["metric"] == "rmse"
    champion = r["champion"]
    assert champion is not None, r["gate"]
    valid = champion["metrics"]["valid"]
    assert {"rmse", "r2"} <= set(valid) and valid["r2"] > 0.2
    assert r["budget"]["limits"]["trials"] is None
    assert r["budget"]["spent"]["seconds"] >= 15  # the time given was spent, no default trial cap ended it
    trainers = {t["trainer"] for t in cli.json("trials", "factory.yaml")}
    assert "logistic_regression" not in trainers and len(trainers) >= 2
    rows = frame.drop(columns=["target"]).head(5)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    cli("predict", "factory.yaml", "rows.csv", "-o", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["target"] and len(out) == 5 and out["target"].between(0, 400).all()


def _gate_refit(cli, tmp_path, refit: str, *, as_json: bool = True):
    body = (
        "name: refit\ndata: {source: sklearn:breast_cancer}\ntrainers:\n  - name: lightgbm\n"
        "    space: {n_estimators: {low: 20, high: 40}, num_leaves: {low: 4, high: 8}}\n"
        f"budget: {{trials: 3}}\nexecution: {{latency_rows: 2}}\ngate: {{bootstrap: 200, refit: {refit}}}\n"
    )
    (tmp_path / "factory.yaml").write_text(body)
    return cli.json("run", "factory.yaml") if as_json else cli("run", "factory.yaml").stdout


@pytest.mark.slow
def test_winner_is_refit_on_all_rows_and_lineage_says_so(cli, tmp_path):
    summary = " ".join(_gate_refit(cli, tmp_path, "train+valid+test", as_json=False).split())
    assert "the gate's figures are evidence about this configuration" in summary  # said where a person reads it
    record = cli.json("lineage", "1")
    lineage = record["lineage"]
    refit = lineage["refit"]
    assert refit["trained_on"] == "train+valid+test" and refit["rows"] == 569 and refit["gated_rows"] < 569
    assert refit["params"] == lineage["params"]
    gated = lineage["gated"]
    assert gated["sealed_test"]["score"] == cli.json("status")["champion"]["metrics"]["sealed_test"]["score"]
    assert "accuracy" in gated["valid"] and len(gated["artifact"]) == 64
    models = cli.json("models", "refit")
    assert models[0]["artifact_hash"] != gated["artifact"]  # the registered model is the refit one
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(20)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    cli("predict", "factory.yaml", "rows.csv", "-o", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 20 and {"target", "proba_0", "proba_1"} <= set(out.columns)


@pytest.mark.slow
def test_refit_none_registers_the_gated_model(cli, tmp_path):
    r = _gate_refit(cli, tmp_path, "none")
    refit = r["champion"]["refit"]
    assert refit["trained_on"] == "train" and "none" in refit["why"]
    lineage = cli.json("lineage", "1")["lineage"]
    assert cli.json("models", "refit")[0]["artifact_hash"] == lineage["gated"]["artifact"]


@pytest.mark.slow
def test_small_data_is_scored_by_k_fold_with_fold_scores_on_record(cli, tmp_path):
    body = (
        "name: cv\ndata: {source: sklearn:breast_cancer}\ntrainers: [logistic_regression]\n"
        "budget: {trials: 2}\nexecution: {latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    (tmp_path / "factory.yaml").write_text(body)
    cli("run", "factory.yaml")
    trials = cli.json("trials", "factory.yaml")
    for t in trials:
        m = t["metrics"]
        folds = [m[f"cv_fold_{i}"] for i in range(1, 6)]  # 455 labelled rows outside the sealed test: 5 folds
        assert m["cv_folds"] == 6 and "cv_fold_6" not in m
        mean = sum([*folds, m["valid_accuracy"]]) / 6
        assert abs(m["accuracy"] - mean) < 1e-9 and abs(t["value"] - mean) < 1e-9
        assert len(set(folds)) > 1  # real, different folds


@pytest.mark.slow
def test_cv_can_be_turned_off_and_is_checked(cli, tmp_path):
    body = (
        "name: nocv\ndata: {source: sklearn:breast_cancer}\ntrainers: [logistic_regression]\nsearch: {cv: 0}\n"
        "budget: {trials: 1}\nexecution: {latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    (tmp_path / "factory.yaml").write_text(body)
    cli("run", "factory.yaml")
    assert not any(k.startswith("cv_") for k in cli.json("trials", "factory.yaml")[0]["metrics"])
    (tmp_path / "factory.yaml").write_text(body.replace("cv: 0", "cv: 1"))
    bad = cli("run", "factory.yaml", check=False)
    assert bad.returncode != 0 and "search.cv" in bad.stderr and "Traceback" not in bad.stderr


def test_greedy_selection_keeps_its_best_round():
    import numpy as np

    from darkfab.train import greedy_weights

    y = np.array([0.0, 1.0, 2.0, 3.0])
    a, b = y + np.array([1, -1, 1, -1.0]), y - np.array([1, -1, 1, -1.0])  # errors that cancel out

    def rmse(p):
        return float(np.sqrt(np.mean((p - y) ** 2)))

    assert greedy_weights([a, b], rmse, maximize=False) == [0.5, 0.5]
    assert greedy_weights([y, a], rmse, maximize=False) == [1.0, 0.0]  # adding a worse member is never kept


OWN_LOG_LOSS = """\
import numpy as np


def own_log_loss(y_true, y_pred, sample_weight=None):
    p = np.clip(np.asarray(y_pred)[np.arange(len(y_true)), np.asarray(y_true).astype(int)], 1e-15, 1.0)
    return float(-np.mean(np.log(p)))
"""
OWN_OBJECTIVE = (
    "{metric: own_log_loss, metrics: {own_log_loss: "
    "{function: 'fabmetrics:own_log_loss', direction: minimize, proba: true}}}"
)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["log_loss", "own_log_loss"])
def test_an_ensemble_candidate_is_built_gated_and_can_win(cli, tmp_path, metric):
    # log loss is convex: the average of two different calibrated models beats the better one on the rows the
    # weights were chosen on, so the ensemble ranks first and must pass the same gate to be registered; the
    # same with the factory's own log loss (the selection once scored only built-in metrics, so no ensemble)
    (tmp_path / "fabmetrics.py").write_text(OWN_LOG_LOSS)
    objective = "{metric: log_loss}" if metric == "log_loss" else OWN_OBJECTIVE
    body = (
        f"name: ens\ndata: {{source: sklearn:breast_cancer}}\nobjective: {objective}\n"
        "trainers:\n  - {name: logistic_regression, space: {C: {low: 0.05, high: 5.0, log: true}}}\n"
        "  - {name: random_forest, params: {n_estimators: 60}}\n"
        "search: {ensemble: true, cv: 0, startup_trials: 2}\nbudget: {trials: 4}\n"
        "execution: {latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    (tmp_path / "factory.yaml").write_text(body)
    r = cli.json("run", "factory.yaml")
    trials = cli.json("trials", "factory.yaml")
    ens = [t for t in trials if t["trainer"] == "ensemble"]
    assert len(ens) == 1 and ens[0]["proposer"] == "ensemble" and ens[0]["state"] == "completed"
    e = ens[0]
    assert len(e["params"]["members"]) >= 2 and abs(sum(e["params"]["weights"]) - 1) < 1e-9
    assert {metric, "latency_p95_ms", "model_size_mb"} <= set(e["metrics"])  # size and latency, as any
    singles = [t for t in trials if t["trainer"] != "ensemble" and t["state"] == "completed"]
    assert e["value"] < min(t["value"] for t in singles)
    assert r["gate"]["trial"] == e["id"] and r["gate"]["passed"] is True
    assert r["champion"]["trainer"] == "ensemble"
    refit = cli.json("lineage", "1")["lineage"]["refit"]
    assert refit["trained_on"] == "train+valid+test" and refit["rows"] == 569  # refit member by member
    from sklearn.datasets import load_breast_cancer

    rows = load_breast_cancer(as_frame=True).frame.drop(columns=["target"]).head(10)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    cli("predict", "factory.yaml", "rows.csv", "-o", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 10 and ((out["proba_0"] + out["proba_1"] - 1).abs() < 1e-6).all()
