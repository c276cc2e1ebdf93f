"""Constraints, fairness, pruning, multi-objective search, CPU budget, PostgreSQL, audit: through the command."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ..helpers.sqlite import sqlite_db


@pytest.mark.slow
def test_infeasible_candidates_rank_below_feasible_ones(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: small\ndata: {source: sklearn:digits}\n"
        "objective: {metric: accuracy, constraints: ['model_size_mb <= 0.2']}\n"
        "trainers:\n  - name: random_forest\n    params: {n_estimators: 300, max_depth: 20}\n    space: {}\n"
        "  - name: logistic_regression\n    params: {C: 0.1}\n    space: {}\n"
        "search: {proposer: random, pruner: none}\nbudget: {trials: 4}\nexecution: {latency_rows: 2}\n"
        "gate: {bootstrap: 200}\n"
    )
    result = cli.json("run", "factory.yaml")
    trials = cli.json("trials")
    forests = [t for t in trials if t["trainer"] == "random_forest"]
    assert forests and all(t["feasible"] is False for t in forests)
    assert all(t["metrics"]["model_size_mb"] > 0.2 for t in forests)
    assert result["champion"]["trainer"] == "logistic_regression"
    board = result["leaderboard"]
    assert [r["feasible"] for r in board].index(False) > [r["feasible"] for r in board].index(True)


@pytest.mark.slow
def test_no_feasible_candidate_means_no_champion(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: tight\ndata: {source: sklearn:iris}\nobjective: {constraints: ['model_size_mb <= 0.000001']}\n"
        "trainers: [logistic_regression]\nbudget: {trials: 2}\nexecution: {latency_rows: 2}\n"
    )
    result = cli.json("run", "factory.yaml")
    assert result["champion"] is None and "no feasible candidate" in result["gate"]["reason"]
    assert "no champion" in cli("run", "factory.yaml", "--trials", "1").stdout


@pytest.mark.slow
def test_fairness_across_a_group_column(cli, tmp_path):
    rng = np.random.default_rng(1)
    n = 400
    group = rng.choice(["a", "b"], size=n)
    x = rng.normal(size=n) + (group == "a") * 0.8
    df = pd.DataFrame({"x": x, "z": rng.normal(size=n), "group": group, "y": (x > 0.4).astype(int)})
    df.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(
        "name: fair\ndata: {source: rows.csv, target: y, group: group}\n"
        "objective: {metric: roc_auc, constraints: ['fairness_gap <= 1.0'], weights: {roc_auc: 1, fairness_gap: 0.2}}\n"
        "trainers: [logistic_regression]\nbudget: {trials: 3}\nexecution: {latency_rows: 2}\n"
    )
    result = cli.json("run", "factory.yaml")
    valid = result["champion"]["metrics"]["valid"]
    assert 0 < valid["demographic_parity_diff"] <= 1 and 0 <= valid["equalized_odds_diff"] <= 1
    assert valid["fairness_gap"] == pytest.approx(max(valid["demographic_parity_diff"], valid["equalized_odds_diff"]))
    trial = next(t for t in cli.json("trials") if t["state"] == "completed")
    assert trial["metrics"]["fairness_gap"] >= 0


@pytest.mark.slow
def test_boosting_trials_are_pruned_on_intermediate_scores(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: prune\ndata: {source: sklearn:digits}\n"
        "trainers:\n  - name: lightgbm\n    space:\n      n_estimators: {low: 150, high: 300}\n"
        "      learning_rate: {low: 0.001, high: 0.3, log: true}\n      num_leaves: {low: 4, high: 16}\n"
        "search: {proposer: tpe, pruner: median, startup_trials: 4, seed: 1}\n"
        "budget: {trials: 14}\nexecution: {workers: 1, latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    result = cli.json("run", "factory.yaml", timeout=400)
    assert result["trials"]["pruned"] >= 1
    pruned = [t for t in cli.json("trials") if t["state"] == "pruned"]
    assert all(t["failure_kind"] == "pruned" for t in pruned)
    with sqlite_db(tmp_path / ".darkfab" / "darkfab.db") as con:
        rows = con.execute("SELECT intermediate FROM trials WHERE state = 'pruned'").fetchall()
        kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM events").fetchall()}
    assert all(r[0] and r[0] != "{}" for r in rows)
    assert {"proposed", "started", "completed", "pruned", "gate_verdict", "registered"} <= kinds


@pytest.mark.parametrize("proposer", ["random", "qmc", "cmaes"])
@pytest.mark.slow
def test_every_proposer_runs_a_campaign(cli, tmp_path, proposer):
    from .conftest import factory_text

    (tmp_path / "factory.yaml").write_text(factory_text(proposer=proposer, trials=4))
    result = cli.json("run", "factory.yaml")
    assert result["trials"]["completed"] + result["trials"]["pruned"] == 4
    assert {t["proposer"] for t in cli.json("trials")} == {proposer}


@pytest.mark.slow
def test_multi_objective_search_with_nsga2(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: pareto\ndata: {source: sklearn:breast_cancer}\n"
        "search: {proposer: nsga2, objectives: [roc_auc, model_size_mb], startup_trials: 4}\n"
        "trainers: [logistic_regression, random_forest]\nbudget: {trials: 6}\nexecution: {latency_rows: 2}\n"
    )
    result = cli.json("run", "factory.yaml")
    assert result["trials"]["completed"] == 6 and result["champion"] is not None


@pytest.mark.slow
def test_cpu_budget_is_a_hard_limit(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: cpu\ndata: {source: sklearn:digits}\n"
        "trainers:\n  - name: random_forest\n    space: {n_estimators: {low: 150, high: 250}}\n"
        "search: {proposer: random}\nbudget: {trials: 200}\nexecution: {latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    result = cli.json("run", "factory.yaml", "--cpu", "3s", timeout=200)
    assert "CPU budget" in result["stopped_because"]
    spent = result["budget"]["spent"]
    assert spent["trials"] < 200 and spent["cpu_seconds"] >= 3
    assert result["champion"] is not None


@pytest.mark.postgres
@pytest.mark.slow
def test_the_same_factory_runs_on_postgresql(cli, tmp_path, pg_url):
    from .conftest import factory_text

    (tmp_path / "factory.yaml").write_text(factory_text(name="pg", trials=3))
    result = cli.json("run", "factory.yaml", "--store", pg_url)
    assert result["store"].startswith("postgresql") and result["champion"]["version"] == 1
    assert len(cli.json("trials", "--store", pg_url)) == 3
    assert cli("audit", "verify", "--store", pg_url).returncode == 0
    assert not (tmp_path / ".darkfab" / "darkfab.db").exists()


@pytest.mark.slow
def test_audit_verify_finds_a_tampered_event(ran, tmp_path):
    import shutil

    cli, _ = ran
    store = tmp_path / "copy.db"
    shutil.copy(cli.cwd / ".darkfab" / "darkfab.db", store)
    shutil.copy(cli.cwd / ".darkfab" / "audit.key", tmp_path)  # a store is its database and its audit key
    url = f"sqlite:///{store}"
    assert cli("audit", "verify", "--store", url).returncode == 0
    with sqlite_db(store) as con:
        (event_id,) = con.execute("SELECT id FROM events WHERE kind = 'gate_verdict'").fetchone()
        con.execute("UPDATE events SET reason = 'nothing to see' WHERE id = ?", (event_id,))
    bad = cli("audit", "verify", "--store", url, check=False)
    assert bad.returncode == 1 and str(event_id) in bad.stdout


def test_db_upgrade_migrates_an_older_store_in_place(cli, tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from darkfab.store import alembic_config, head_revision

    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")  # the first schema darkfab shipped
    engine.dispose()
    out = cli("db", "upgrade", "--store", f"sqlite:///{db}").stdout
    assert "0001" in out and head_revision() in out
    with sqlite_db(db) as con:
        assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
    assert head_revision() in cli("db", "upgrade", "--store", f"sqlite:///{db}").stdout


@pytest.mark.slow
def test_leaks_and_candidates_far_better_on_validation_are_kept_out_of_the_gate(cli, tmp_path):
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    y = (x > 0).astype(int)
    y[-80:] = 1 - y[-80:]  # the newest rows (the sealed test) follow the opposite rule
    df = pd.DataFrame({"when": np.arange(n), "x": x, "noise": rng.normal(size=n), "copy": y, "y": y})
    df.loc[: n - 81, "copy"] = y[: n - 80]
    df.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(
        "name: leaky\ndata: {source: rows.csv, target: y, time: when, exclude: [copy]}\n"
        "trainers: [logistic_regression]\nbudget: {trials: 3}\nexecution: {latency_rows: 2}\n"
    )
    result = cli.json("run", "factory.yaml")
    assert result["champion"] is None
    assert "flagged" in result["gate"]["reason"]
    with sqlite_db(tmp_path / ".darkfab" / "darkfab.db") as con:
        flagged = con.execute("SELECT reason FROM events WHERE kind = 'candidate_flagged'").fetchall()
    assert flagged and all("sealed-test" in r for (r,) in flagged)
    (tmp_path / "factory.yaml").write_text(
        "name: leaky2\ndata: {source: rows.csv, target: y}\n"
        "trainers: [logistic_regression]\nbudget: {trials: 2}\nexecution: {latency_rows: 2}\n"
    )
    cli.json("run", "factory.yaml")
    with sqlite_db(tmp_path / ".darkfab" / "darkfab.db") as con:
        leaks = con.execute("SELECT reason FROM events WHERE kind = 'leaked_feature'").fetchall()
    assert any("'copy'" in r for (r,) in leaks), leaks
