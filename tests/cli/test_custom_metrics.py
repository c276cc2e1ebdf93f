"""Metrics of the user's own (objective.metrics), through `darkfab run`: primary, constraint, weight, gate."""

from __future__ import annotations

import pytest

METRICS_MODULE = """\
import numpy as np


def hits(y_true, y_pred, sample_weight=None):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def misses(y_true, y_pred, sample_weight=None):
    return 1.0 - hits(y_true, y_pred)


def brier(y_true, y_pred, sample_weight=None):
    return float(np.mean((np.asarray(y_pred)[:, 1] - np.asarray(y_true)) ** 2))


def broken(y_true, y_pred, sample_weight=None):
    raise ZeroDivisionError("the margin table has no rows")
"""


def _factory(folder, objective: str, more: str = "") -> None:
    folder.mkdir(exist_ok=True)
    (folder / "fabmetrics.py").write_text(METRICS_MODULE)
    (folder / "factory.yaml").write_text(
        "name: own\ndata: {source: sklearn:breast_cancer}\n"
        f"objective:\n{objective}"
        "  metrics:\n"
        "    hits: {function: 'fabmetrics:hits', direction: maximize}\n"
        "    misses: {function: 'fabmetrics:misses', direction: minimize}\n"
        "    brier: {function: 'fabmetrics:brier', direction: minimize, proba: true}\n"
        f"{more}"
        "trainers: [logistic_regression]\nsearch: {proposer: random, pruner: none}\nbudget: {trials: 3}\n"
        "execution: {workers: 1, latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )


@pytest.mark.slow
def test_a_custom_metric_is_the_primary_metric_weighted_and_bootstrapped_at_the_gate(cli, tmp_path):
    # the module sits next to the factory file, not in the working folder: darkfab finds it there
    _factory(tmp_path / "fab", "  metric: hits\n  weights: {hits: 1.0, brier: 0.5}\n  constraints: ['misses <= 0.5']\n")
    result = cli.json("run", "fab/factory.yaml")
    champion = result["champion"]
    valid = champion["metrics"]["valid"]
    # breast_cancer is small: the search scores the own primary metric over the training folds too, as it does
    # a built-in one (it once fell back to the one validation split without a word)
    assert valid["cv_folds"] == 6
    folds = [valid[f"cv_fold_{i}"] for i in range(1, 6)] + [valid["valid_hits"]]
    assert valid["hits"] == pytest.approx(sum(folds) / 6)
    assert valid["valid_hits"] == pytest.approx(valid["accuracy"])
    assert valid["misses"] == pytest.approx(1.0 - valid["accuracy"])
    assert 0.0 <= valid["brier"] < 0.25
    sealed = champion["metrics"]["sealed_test"]
    assert sealed["metric"] == "hits"
    assert sealed["low"] <= sealed["score"] <= sealed["high"] and sealed["low"] < sealed["high"]
    trials = cli.json("trials")
    assert all(t["feasible"] for t in trials if t["state"] == "completed")


def test_a_custom_constraint_nobody_meets_leaves_no_champion(cli, tmp_path):
    _factory(tmp_path / "fab", "  metric: accuracy\n  constraints: ['misses <= 0.0000001']\n")
    result = cli.json("run", "fab/factory.yaml")
    assert result["champion"] is None and "no feasible candidate" in result["gate"]["reason"]


def test_a_metric_that_cannot_be_imported_is_a_clear_error(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: own\ndata: {source: sklearn:iris}\n"
        "objective: {metric: profit, metrics: {profit: {function: 'nosuchmodule:profit', direction: maximize}}}\n"
        "trainers: [logistic_regression]\nbudget: {trials: 1}\n"
    )
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode != 0
    assert "objective.metrics.profit: cannot import 'nosuchmodule:profit'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_metric_name_lists_the_custom_ones_and_a_built_in_name_is_refused(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: own\ndata: {source: sklearn:iris}\n"
        "objective: {metric: profitt, metrics: {profit: {function: 'm:profit', direction: maximize}}}\n"
    )
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode != 0 and "unknown metric 'profitt'" in proc.stderr and "profit" in proc.stderr
    (tmp_path / "factory.yaml").write_text(
        "name: own\ndata: {source: sklearn:iris}\n"
        "objective: {metrics: {accuracy: {function: 'm:acc', direction: maximize}}}\n"
    )
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode != 0 and "'accuracy' is a built-in metric" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_metric_function_that_raises_is_a_clear_error(cli, tmp_path):
    _factory(
        tmp_path / "fab", "  metric: broken\n", "    broken: {function: 'fabmetrics:broken', direction: maximize}\n"
    )
    proc = cli("run", "fab/factory.yaml", check=False)
    assert proc.returncode != 0
    assert "objective.metrics.broken: fabmetrics:broken raised ZeroDivisionError" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_custom_metric_is_an_objective_of_a_multi_objective_search(cli, tmp_path):
    folder = tmp_path / "fab"
    _factory(folder, "  metric: hits\n")
    text = (folder / "factory.yaml").read_text()
    text = text.replace(
        "search: {proposer: random, pruner: none}",
        "search: {proposer: nsga2, objectives: [hits, brier], startup_trials: 2}",
    )
    (folder / "factory.yaml").write_text(text.replace("budget: {trials: 3}", "budget: {trials: 4}"))
    result = cli.json("run", "fab/factory.yaml")
    assert result["trials"]["completed"] == 4 and result["champion"] is not None
    text = text.replace("objectives: [hits, brier]", "objectives: [hits, brierr]")
    (folder / "factory.yaml").write_text(text)
    proc = cli("run", "fab/factory.yaml", check=False)
    assert proc.returncode == 2 and "unknown metric 'brierr' in search.objectives" in proc.stderr
