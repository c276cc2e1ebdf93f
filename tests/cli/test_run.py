"""`darkfab run` and the read commands, end to end through real processes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from .conftest import factory_text


def test_run_json_summary_has_the_promised_fields(ran):
    _, r = ran
    champion = r["champion"]
    assert champion["version"] == 1 and champion["trainer"] in ("logistic_regression", "lightgbm")
    assert isinstance(champion["params"], dict) and champion["params"]
    assert 0.8 < champion["metrics"]["valid"]["accuracy"] <= 1.0
    sealed = champion["metrics"]["sealed_test"]
    assert sealed["metric"] == "accuracy" and sealed["low"] <= sealed["score"] <= sealed["high"]
    assert r["trials"]["completed"] + r["trials"]["failed"] + r["trials"]["pruned"] == 6
    assert r["budget"]["spent"]["trials"] == 6 and r["budget"]["spent"]["seconds"] > 0
    assert r["beat"]["kind"] == "baseline" and r["gate"]["passed"] is True


@pytest.mark.slow
def test_read_commands_show_the_records(ran):
    cli, r = ran
    status = cli.json("status")
    assert status["name"] == "fast" and status["champion"]["version"] == 1
    assert status["campaigns"][0]["status"] == "finished"
    trials = cli.json("trials", "factory.yaml")
    assert len(trials) == 6
    for t in trials:
        assert {"id", "state", "proposer", "trainer", "params", "metrics"} <= set(t)
        assert t["proposer"] == "tpe"
    completed = [t for t in trials if t["state"] == "completed"]
    assert all("roc_auc" in t["metrics"] and "latency_p95_ms" in t["metrics"] for t in completed)
    models = cli.json("models", "fast")
    assert models[0]["aliases"] == ["champion"] and len(models[0]["artifact_hash"]) == 64
    lineage = cli.json("lineage", "1")
    assert lineage["version"] == 1 and lineage["ancestors"] == []
    for key in ("proposal", "trainer", "params", "data_fingerprint", "packages", "parents"):
        assert key in lineage["lineage"], key
    assert "scikit-learn" in lineage["lineage"]["packages"]
    assert lineage["lineage"]["proposal"]["proposer"] == "tpe"
    status_text, trials_text, models_text = cli("status").stdout, cli("trials").stdout, cli("models").stdout
    assert "fast" in status_text and "champion" in status_text
    assert trials_text.count("completed") == len(completed) and "tpe" in trials_text
    assert "champion" in models_text and models[0]["artifact_hash"][:12] in models_text
    assert cli("audit", "verify").returncode == 0


@pytest.mark.slow
def test_predict_scores_raw_rows_like_mlflow_models_predict(cli, tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": x,
            "colour": rng.choice(["red", "green", None], size=n),
            "size": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        }
    )
    df["kind"] = np.where(x + (df["colour"] == "red") > 0, "good", "bad")
    df.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "factory.yaml").write_text(factory_text(name="kinds", source="rows.csv", target="kind", trials=4))
    cli("run", "factory.yaml")
    df.drop(columns=["kind"]).head(25).to_csv(tmp_path / "new.csv", index=False)
    cli("predict", "factory.yaml", "new.csv", "-o", "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 25 and set(out["kind"]) <= {"good", "bad"}
    assert (out["kind"] == df["kind"].head(25)).mean() > 0.7
    cli("predict", "new.csv", "-o", "out1.csv", "--version", "1")
    assert pd.read_csv(tmp_path / "out1.csv")["kind"].tolist() == out["kind"].tolist()
    df.drop(columns=["kind", "colour"]).to_csv(tmp_path / "bad.csv", index=False)
    bad = cli("predict", "bad.csv", "-o", "nope.csv", check=False)
    assert bad.returncode == 2 and "bad.csv" in bad.stderr and "'colour'" in bad.stderr
    assert not (tmp_path / "nope.csv").exists()
    missing = cli("predict", "new.csv", "-o", "x.csv", "--version", "7", check=False)
    assert missing.returncode == 1 and "7" in missing.stderr


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("name: x\ndata: {source: sklearn:iris}\nbudget: {trials: 0}\n", ["factory.yaml", "budget.trials"]),
        ("name: x\ndata: {source: nowhere.csv, target: y}\n", ["nowhere.csv", "no such data file"]),
        ("name: x\ndata: {source: sklearn:iris, target: species}\n", ["data.target", "species"]),
        ("name: x\ndata: {source: sklearn:iris}\ntrainers: [forest]\n", ["unknown trainer 'forest'"]),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, text, needles):
    (tmp_path / "factory.yaml").write_text(text)
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode == 2, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / ".darkfab").exists()


@pytest.mark.slow
def test_second_run_starts_a_warm_started_campaign(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(factory_text(name="twice", trials=4))
    first = cli.json("run", "factory.yaml")
    second = cli.json("run", "factory.yaml", "--trials", "3", "--seed", "2")
    assert (first["campaign_number"], second["campaign_number"]) == (1, 2)
    assert second["warm_started_from"] == 4 and second["resumed"] is False
    assert second["budget"]["spent"]["trials"] == 3
    assert second["champion"]["version"] >= 1
    assert second["gate"]["reason"]
    assert len(cli.json("trials")) == 7


@pytest.mark.slow
def test_regression_factory_and_python_api(tmp_path):
    import darkfab

    (tmp_path / "f.yaml").write_text(
        "name: diab\ndata: {source: sklearn:diabetes}\ntrainers: [linear_regression, random_forest]\n"
        "budget: {trials: 4}\nexecution: {workers: 2, latency_rows: 2}\ngate: {bootstrap: 200}\n"
    )
    f = darkfab.Factory.from_file(tmp_path / "f.yaml", store=f"sqlite:///{tmp_path / 's.db'}")
    result = f.run(workers=1)
    assert isinstance(result, darkfab.RunResult)
    assert result.task == "regression" and result.metric == "rmse"
    assert result.champion is not None and result.champion.metrics["sealed_test"]["score"] > 0
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.drop(columns=["target"]).head(5)
    preds = f.predict(frame)
    assert list(preds.columns) == ["target"] and len(preds) == 5
    json.dumps(result.to_json())
    f.close()


def test_init_and_schema(cli, tmp_path):
    cli("init", "factory.yaml")
    assert "name: my-factory" in (tmp_path / "factory.yaml").read_text()
    again = cli("init", "factory.yaml", check=False)
    assert again.returncode == 2 and "--force" in again.stderr
    schema = json.loads(cli("schema").stdout)
    assert schema["title"] == "darkfab factory file" and "budget" in schema["properties"]
