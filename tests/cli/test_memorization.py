"""The gate's memorization probe: a model that recognises rows is kept out; honest trainers are not flagged."""

from __future__ import annotations

import json

import pytest

from darkfab.data import load_dataset
from darkfab.spec import spec_from_dict
from tests.cli.conftest import factory_text
from tests.helpers.memorize import lookup_script

from ..helpers.sqlite import sqlite_db

SPLIT = {"source": "sklearn:breast_cancer", "target": "target"}


def _flags(folder):
    with sqlite_db(folder / ".darkfab" / "darkfab.db") as con:
        rows = con.execute("SELECT trial_id, reason, data FROM events WHERE kind = 'candidate_flagged'").fetchall()
    return [(trial, reason, json.loads(data)) for trial, reason, data in rows]


OWN_METRIC = """\
import numpy as np


def hits(y_true, y_pred, sample_weight=None):
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
"""


def _attack(tmp_path, *, wrong: int, plain: bool, own_metric: bool = False) -> None:
    data = load_dataset(spec_from_dict({"name": "x", "data": SPLIT}, "test"))
    (tmp_path / "lookup.py").write_text(lookup_script(data, wrong_valid_rows=wrong))
    trainers = "  - {name: logistic_regression, space: {}}\n" if plain else ""
    objective = "{metric: accuracy}"
    if own_metric:  # the factory ranks by a metric of its own: the probe must score the copies with it too
        (tmp_path / "fabmetrics.py").write_text(OWN_METRIC)
        objective = "{metric: hits, metrics: {hits: {function: 'fabmetrics:hits', direction: maximize}}}"
    (tmp_path / "factory.yaml").write_text(
        f"name: attack\ndata: {{source: sklearn:breast_cancer}}\nobjective: {objective}\n"
        f"trainers:\n{trainers}  - {{name: lookup, script: lookup.py}}\n"
        "search: {proposer: random, pruner: none, seed: 1}\nbudget: {trials: 4}\n"
        "execution: {workers: 1, latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )


@pytest.mark.parametrize("own_metric", [False, True], ids=["accuracy", "own-metric"])
@pytest.mark.slow
def test_a_model_that_looks_up_the_sealed_rows_is_kept_out_of_the_gate(cli, tmp_path, own_metric):
    _attack(tmp_path, wrong=0, plain=True, own_metric=own_metric)
    result = cli.json("run", "factory.yaml")
    trials = cli.json("trials")
    lookups = [t for t in trials if t["trainer"] == "lookup" and t["state"] == "completed"]
    assert lookups and all(t["value"] == 1.0 for t in lookups)  # perfect on validation: it would have won
    flags = _flags(tmp_path)
    flagged = {trial for trial, _, _ in flags}
    assert {t["id"] for t in lookups} <= flagged
    for _, reason, data in flags:
        probe = next(s for s in data["suspicions"] if s["kind"] == "memorization")
        assert probe["sealed_score"] == 1.0 and probe["perturbed_score"] < 0.8 and "perturbed copies" in reason
        assert [s["kind"] for s in data["suspicions"]] == ["memorization"]  # the older probes miss it
    assert result["champion"]["trainer"] == "logistic_regression"
    assert result["champion"]["metrics"]["sealed_test"]["score"] < 1.0
    assert result["gate"]["memorization"]["flagged"] is False
    assert {f["trial"] for f in result["gate"]["flagged"]} == flagged
    assert all(m["trainer"] != "lookup" for m in cli.json("models"))


def test_answering_one_validation_row_wrong_does_not_hide_a_lookup(cli, tmp_path):
    _attack(tmp_path, wrong=1, plain=False)
    result = cli.json("run", "factory.yaml")
    assert result["champion"] is None and "flagged" in result["gate"]["reason"]
    flags = _flags(tmp_path)
    assert flags
    for _, _, data in flags:
        kinds = {s["kind"] for s in data["suspicions"]}
        assert "too_good_on_validation" in kinds, data


@pytest.mark.parametrize("source", ["sklearn:breast_cancer", "sklearn:digits"])
def test_honest_trainers_are_never_flagged_as_memorizing(cli, tmp_path, source):
    (tmp_path / "factory.yaml").write_text(factory_text(source=source, trials=4))
    result = cli.json("run", "factory.yaml")
    assert result["champion"] is not None
    assert result["gate"]["memorization"]["flagged"] is False
    assert result["gate"]["memorization"]["perturbed_score"] > 0.9
    assert not any(s["kind"] == "memorization" for _, _, data in _flags(tmp_path) for s in data["suspicions"])
