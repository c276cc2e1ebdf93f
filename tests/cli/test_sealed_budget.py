"""The sealed test wears out: its gate decisions are counted, and past the declared budget the rows are split anew."""

from __future__ import annotations

import json
import time

import pytest

from ..helpers.sqlite import sqlite_db

BODY = """\
name: worn
data: {{source: sklearn:breast_cancer, split: {{seed: 3}}{extra}}}
objective: {{metric: accuracy}}
trainers: [logistic_regression]
search: {{proposer: random, pruner: none}}
budget: {{trials: 1}}
execution: {{workers: 1, latency_rows: 2}}
gate: {{bootstrap: 200, sealed_budget: 2}}
"""


def _events(folder, kind):
    with sqlite_db(folder / ".darkfab" / "darkfab.db") as con:
        rows = con.execute("SELECT reason, data FROM events WHERE kind = ? ORDER BY id", (kind,)).fetchall()
    return [(reason, json.loads(data)) for reason, data in rows]


@pytest.mark.slow
def test_a_sealed_set_past_its_budget_is_split_again_on_record(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(BODY.format(extra=""))
    first = cli.json("run", "factory.yaml")
    second = cli.json("run", "factory.yaml")
    assert (first["gate"]["sealed_uses"], first["gate"]["sealed_budget"]) == (1, 2)
    assert second["gate"]["sealed_uses"] == 2
    assert first["gate"]["sealed_set"] == second["gate"]["sealed_set"]
    assert first["gate"]["sealed_set"]["split_seed"] == 3
    assert _events(tmp_path, "sealed_set_rotated") == []

    third = cli("run", "factory.yaml").stdout  # the budget is spent: this campaign splits afresh
    assert "sealed_uses: 1 of 2" in third
    rotated = _events(tmp_path, "sealed_set_rotated")
    assert len(rotated) == 1
    reason, data = rotated[0]
    assert "2 gate decisions" in reason and "gate.sealed_budget = 2" in reason
    assert (data["old_seed"], data["new_seed"], data["uses"], data["budget"]) == (3, 4, 2, 2)
    verdicts = [d for _, d in _events(tmp_path, "gate_verdict")]
    assert [v["sealed_set"]["split_seed"] for v in verdicts] == [3, 3, 4]
    assert [v["sealed_uses"] for v in verdicts] == [1, 2, 1]

    fourth = cli.json("run", "factory.yaml")  # the new set's count goes on; no second rotation yet
    assert fourth["gate"]["sealed_uses"] == 2 and fourth["gate"]["sealed_set"]["split_seed"] == 4
    assert len(_events(tmp_path, "sealed_set_rotated")) == 1
    assert cli.json("status", "worn")["sealed"]["sealed_uses"] == 2
    assert "sealed_uses: 2 of 2 (split seed 4)" in cli("status", "worn").stdout
    lineage = cli.json("lineage", "worn", "champion")["lineage"]
    assert lineage["gate"]["sealed_set"]["split_seed"] in (3, 4)


@pytest.mark.slow
def test_a_time_ordered_sealed_set_past_its_budget_asks_for_newer_rows(cli, tmp_path):
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    frame["when"] = range(len(frame))
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "rows.csv", index=False)
    text = BODY.format(extra=", target: target, time: when").replace("sklearn:breast_cancer", "rows.csv")
    (tmp_path / "factory.yaml").write_text(text.replace("sealed_budget: 2", "sealed_budget: 1"))
    cli.json("run", "factory.yaml")
    again = cli.json("run", "factory.yaml")
    assert again["gate"]["sealed_uses"] == 2 and again["gate"]["sealed_budget"] == 1
    worn = _events(tmp_path, "sealed_set_worn")
    assert len(worn) == 1 and "newer labelled rows" in worn[0][0]
    assert _events(tmp_path, "sealed_set_rotated") == []


PROBE = """\
import hashlib
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression


def train(X, y, X_valid, params, report):
    print("rows", hashlib.sha1(np.ascontiguousarray(X).tobytes()).hexdigest()[:12], file=sys.stderr)
    return LogisticRegression(C=params["C"], max_iter=500).fit(X, y)
"""


@pytest.mark.slow
def test_a_worker_started_before_a_rotation_trains_on_the_new_split(cli, tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)  # says which training rows it was given
    (tmp_path / "factory.yaml").write_text(
        "name: rot\ndata: {source: sklearn:breast_cancer}\nobjective: {metric: accuracy}\n"
        "trainers: [{name: probe, script: probe.py, space: {C: {low: 0.1, high: 10.0, log: true}}}]\n"
        "search: {proposer: random, pruner: none}\nbudget: {trials: 10}\n"
        "execution: {workers: 1, lease: 4s, latency_rows: 2}\ngate: {bootstrap: 200, sealed_budget: 1}\n"
    )
    cli.json("run", "factory.yaml", "--trials", "1")
    worker = cli.popen("worker", "factory.yaml", "--wait", "60s")  # loads the data before the rotation
    try:
        deadline = time.monotonic() + 60
        while not cli.json("status")["workers"] and time.monotonic() < deadline:
            time.sleep(0.5)  # the coordinator queues for the workers it has seen announce themselves
        cli.json("run", "factory.yaml")
    finally:
        worker.terminate()
        worker.communicate(timeout=60)
    assert len(_events(tmp_path, "sealed_set_rotated")) == 1
    with sqlite_db(tmp_path / ".darkfab" / "darkfab.db") as con:
        rows = con.execute("SELECT campaign_id, worker, log_tail FROM trials WHERE state = 'completed'").fetchall()
    first = {tail for campaign, _, tail in rows if campaign == 1}
    second = {tail for campaign, _, tail in rows if campaign == 2}
    by_worker = {tail for campaign, who, tail in rows if campaign == 2 and who.startswith("worker@")}
    assert by_worker, rows  # the worker took part
    assert len(second) == 1 and second != first and by_worker == second
