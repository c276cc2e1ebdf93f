"""A data set with planted post-outcome columns: they are dropped, on record, and the champion stays honest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from ..helpers.sqlite import sqlite_db

BODY = """\
name: {name}
data: {{source: {source}, target: diagnosis{extra}}}
objective: {{metric: accuracy}}
trainers: [logistic_regression]
search: {{proposer: random, pruner: none}}
budget: {{trials: 1}}
execution: {{workers: 1, latency_rows: 2}}
gate: {{bootstrap: 200}}
"""


def _write_sets(folder) -> None:
    """honest.csv: breast_cancer as it is; leaky.csv: the same rows plus two columns known only after the outcome."""
    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "diagnosis"})
    frame.to_csv(folder / "honest.csv", index=False)
    rng = np.random.default_rng(7)
    leaky = frame.copy()
    leaky.insert(3, "outcome_code", frame["diagnosis"])  # the label itself, under another name
    leaky.insert(8, "followup_cost", frame["diagnosis"] * 10.0 + rng.normal(0, 1.0, len(frame)))  # a threshold
    leaky.to_csv(folder / "leaky.csv", index=False)


def _events(folder, kind):
    with sqlite_db(folder / ".darkfab" / "darkfab.db") as con:
        return con.execute("SELECT reason, data FROM events WHERE kind = ?", (kind,)).fetchall()


@pytest.mark.slow
def test_planted_leaks_are_dropped_on_record_and_the_champion_stays_honest(cli, tmp_path):
    _write_sets(tmp_path)
    (tmp_path / "honest.yaml").write_text(BODY.format(name="honest", source="honest.csv", extra=""))
    (tmp_path / "leaky.yaml").write_text(BODY.format(name="leaky", source="leaky.csv", extra=""))
    honest = cli.json("run", "honest.yaml")
    leaky = cli.json("run", "leaky.yaml")

    leaks = {leak["feature"]: leak for leak in leaky["leaks"]}
    assert set(leaks) == {"outcome_code", "followup_cost"}, leaky["leaks"]
    assert leaks["outcome_code"]["rule"] == "equals_target"
    assert leaks["followup_cost"]["rule"] == "separates_classes" and leaks["followup_cost"]["figure"] >= 0.999
    assert all(leak["action"] == "dropped" for leak in leaks.values())
    assert honest["leaks"] == []

    rows = _events(tmp_path, "leaked_feature")
    assert len(rows) == 2 and all("dropped from training" in reason for reason, _ in rows), rows
    assert any("'followup_cost'" in reason and "threshold" in reason for reason, _ in rows)

    honest_score = honest["champion"]["metrics"]["sealed_test"]["score"]
    leaky_score = leaky["champion"]["metrics"]["sealed_test"]["score"]
    assert honest_score < 1.0
    assert leaky_score < 1.0 and abs(leaky_score - honest_score) <= 0.03, (leaky_score, honest_score)
    features = cli.json("lineage", "leaky", "champion")["lineage"]["features"]
    assert "outcome_code" not in features and "followup_cost" not in features and "mean radius" in features

    status = cli.json("status", "leaky")
    assert {leak["feature"]: leak["action"] for leak in status["leaks"]} == {
        "outcome_code": "dropped",
        "followup_cost": "dropped",
    }
    text = cli("status", "leaky").stdout
    assert "leaked feature 'followup_cost'" in text and "dropped" in text
    assert "leaked feature" in cli("run", "leaky.yaml", "--trials", "1").stdout


@pytest.mark.slow
def test_a_leaky_column_kept_on_purpose_stays_a_feature_and_says_so(cli, tmp_path):
    _write_sets(tmp_path)
    extra = ", keep_leaky: [followup_cost]"
    (tmp_path / "keep.yaml").write_text(BODY.format(name="keep", source="leaky.csv", extra=extra))
    result = cli.json("run", "keep.yaml")
    actions = {leak["feature"]: leak["action"] for leak in result["leaks"]}
    assert actions == {"outcome_code": "dropped", "followup_cost": "kept"}
    features = cli.json("lineage", "keep", "champion")["lineage"]["features"]
    assert "followup_cost" in features and "outcome_code" not in features
    reasons = [reason for reason, _ in _events(tmp_path, "leaked_feature")]
    assert any("'followup_cost'" in r and "data.keep_leaky" in r and "kept" in r for r in reasons), reasons

    (tmp_path / "typo.yaml").write_text(BODY.format(name="typo", source="leaky.csv", extra=", keep_leaky: [folowup]"))
    bad = cli("run", "typo.yaml", check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "data.keep_leaky[0]" in bad.stderr + bad.stdout and "followup_cost" in bad.stderr + bad.stdout


def test_data_that_is_nothing_but_leaks_is_refused_with_the_fix(cli, tmp_path):
    y = np.random.default_rng(0).integers(0, 2, 200)
    pd.DataFrame({"copy": y, "y": y}).to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "f.yaml").write_text(
        "name: only\ndata: {source: rows.csv, target: y}\ntrainers: [logistic_regression]\nbudget: {trials: 1}\n"
    )
    bad = cli("run", "f.yaml", check=False)
    text = bad.stderr + bad.stdout
    assert bad.returncode != 0 and "Traceback" not in text
    assert "'copy'" in text and "keep_leaky" in text
