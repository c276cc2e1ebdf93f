"""`darkfab export mlflow` against a real `mlflow server` on loopback, loaded back with mlflow.pyfunc."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from darkfab.registry import Registry
from darkfab.store import Store
from darkfab.train import load_model

from .conftest import Trained, free_port

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (the mlflow extra; CI installs it via dev)")


@pytest.mark.slow
def test_a_version_reaches_mlflow_with_its_figures_lineage_and_aliases_and_predicts_the_same(
    trained: Trained, tracking: str
) -> None:
    from mlflow.tracking import MlflowClient

    done = trained.cli.json(
        "export", "mlflow", "champion", "--tracking-uri", tracking, "--registered-name", "exported-model", timeout=600
    )
    assert done["registered_name"] == "exported-model" and done["aliases"] == ["champion"]
    client = MlflowClient(tracking_uri=tracking)
    by_alias = client.get_model_version_by_alias("exported-model", "champion")
    assert by_alias.version == done["registered_version"] and by_alias.tags["darkfab.version"] == "1"

    with Store(trained.store) as st:
        record, blob = Registry(st).load_bytes("exported", "champion")
    run = client.get_run(done["run_id"])
    assert run.data.params["trainer"] == record.trainer == "logistic_regression"
    assert {k: run.data.params[k] for k in record.params} == {k: str(v) for k, v in record.params.items()}
    sealed = record.metrics["sealed_test"]
    metric = sealed["metric"]
    assert run.data.metrics[f"sealed_test/{metric}"] == pytest.approx(sealed["score"])
    assert run.data.metrics[f"sealed_test/{metric}_low"] == pytest.approx(sealed["low"])
    assert run.data.metrics[f"sealed_test/{metric}_high"] == pytest.approx(sealed["high"])
    assert run.data.metrics["valid/accuracy"] == pytest.approx(record.metrics["valid"]["accuracy"])
    tags = run.data.tags
    assert tags["darkfab.artifact_sha256"] == record.artifact_hash
    assert tags["darkfab.lineage.data_fingerprint"] == record.lineage["data_fingerprint"]

    mlflow.set_tracking_uri(tracking)
    uri = "models:/exported-model@champion"
    loaded = mlflow.pyfunc.load_model(uri)
    inputs = loaded.metadata.get_input_schema()
    assert inputs.input_names() == ["x", "count", "colour"]
    frame = pd.DataFrame(trained.records(20))
    frame["x"] = frame["x"].astype(float)
    frame["count"] = frame["count"].astype(float)
    ours = load_model(blob).predict(frame)
    assert list(loaded.predict(frame)) == list(ours)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(uri)).read_text().split()
    assert any(r.startswith("scikit-learn==") for r in requirements)
    assert any(r.startswith("mlflow==") for r in requirements)


def test_an_unreachable_tracking_server_is_a_clear_error(trained: Trained) -> None:
    proc = trained.cli(
        "export",
        "mlflow",
        "champion",
        "--tracking-uri",
        f"http://127.0.0.1:{free_port()}",
        check=False,
        timeout=600,
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "refused the export" in proc.stderr or "cannot reach" in proc.stderr
