"""`registry.mlflow`: every `darkfab run` that registers a winner mirrors it to a real `mlflow server` on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from darkfab.events import EventKind
from darkfab.store import Store
from tests.cli.conftest import CLI

from ..helpers.serving import register_copy
from .conftest import FACTORY, free_port, rows

mlflow = pytest.importorskip("mlflow", reason="MLflow is not installed (the mlflow extra; CI installs it via dev)")

pytestmark = pytest.mark.slow  # a campaign, then an MLflow export with its pyfunc model: well over 20 s


def _factory(folder: Path, registry: str) -> CLI:
    rows().to_csv(folder / "rows.csv", index=False)
    (folder / "factory.yaml").write_text(FACTORY + registry)
    return CLI(folder)


def _events(folder: Path, kind: str) -> list[dict[str, object]]:
    with Store(f"sqlite:///{folder / '.darkfab' / 'darkfab.db'}") as st:
        return [{"reason": e.reason, **e.data} for e in st.list_events(kinds=(kind,))]


def test_a_run_mirrors_its_champion_to_mlflow_under_the_same_alias_and_it_predicts_the_same(
    tmp_path: Path, tracking: str
) -> None:
    cli = _factory(tmp_path, f"registry: {{mlflow: {{tracking_uri: '{tracking}', registered_name: mirrored}}}}\n")
    result = cli.json("run", "factory.yaml", timeout=600)  # stdout stays one JSON document despite MLflow's prints
    assert result["champion"]["version"] == 1 and result["champion"]["alias"] == "champion"
    [exported] = _events(tmp_path, EventKind.MLFLOW_EXPORTED)
    assert exported["version"] == 1 and exported["registered_name"] == "mirrored"
    assert exported["aliases"] == ["champion"] and not _events(tmp_path, EventKind.MLFLOW_EXPORT_FAILED)

    frame = rows(8, seed=11).drop(columns=["kind"])
    frame.to_csv(tmp_path / "in.csv", index=False)
    cli("predict", "in.csv", "-o", "out.csv")
    ours = pd.read_csv(tmp_path / "out.csv")["kind"].tolist()  # the column is named after the target
    mlflow.set_tracking_uri(tracking)
    loaded = mlflow.pyfunc.load_model("models:/mirrored@champion")
    frame = frame.astype({"x": float, "count": float})
    assert list(loaded.predict(frame)) == ours
    from mlflow.tracking import MlflowClient

    by_alias = MlflowClient(tracking_uri=tracking).get_model_version_by_alias("mirrored", "champion")
    assert by_alias.version == exported["registered_version"] and by_alias.run_id == exported["run_id"]


def test_an_approval_moves_the_mlflow_alias_from_pending_to_champion_on_the_same_mlflow_version(
    tmp_path: Path, tracking: str
) -> None:
    from mlflow.tracking import MlflowClient

    registry = f"registry: {{mlflow: {{tracking_uri: '{tracking}', registered_name: approved}}}}\n"
    cli = _factory(tmp_path, registry.replace("registry:", "gate: {bootstrap: 100, approval: required}\nregistry:"))
    (tmp_path / "factory.yaml").write_text(
        (tmp_path / "factory.yaml").read_text().replace("gate: {bootstrap: 100}\n", "")
    )
    assert cli.json("run", "factory.yaml", timeout=600)["champion"]["alias"] == "pending"
    client = MlflowClient(tracking_uri=tracking)
    mirrored = client.get_model_version_by_alias("approved", "pending").version
    cli("approve", "1", "--by", "ann", "--reason", "looks right")
    assert client.get_model_version_by_alias("approved", "champion").version == mirrored
    assert "pending" not in client.get_registered_model("approved").aliases
    [moved] = _events(tmp_path, EventKind.MLFLOW_ALIASES_SET)
    assert moved["aliases"] == {"champion": mirrored} and moved["exported"] == []
    assert "version 1 approved by ann" in str(moved["reason"])


def test_an_unreachable_mlflow_never_costs_the_darkfab_registration(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    cli = _factory(tmp_path, f"registry: {{mlflow: {{tracking_uri: '{down}'}}}}\n")
    proc = cli("run", "factory.yaml", "--json", check=False, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert cli.json("models")[0]["aliases"] == ["champion"]  # registered and promoted in darkfab
    [failed] = _events(tmp_path, EventKind.MLFLOW_EXPORT_FAILED)
    assert failed["version"] == 1 and failed["on_error"] == "warn" and "cannot reach" in str(failed["error"])
    assert f"darkfab export mlflow 1 --tracking-uri {down}" in str(failed["reason"])
    assert not _events(tmp_path, EventKind.MLFLOW_EXPORTED)


def test_on_error_fail_keeps_the_registration_and_exits_non_zero_saying_how_to_retry(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    cli = _factory(tmp_path, f"registry: {{mlflow: {{tracking_uri: '{down}', on_error: fail}}}}\n")
    proc = cli("run", "factory.yaml", check=False, timeout=600)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "version 1 is recorded in darkfab but its MLflow export failed" in proc.stderr
    assert cli.json("models")[0]["aliases"] == ["champion"]
    assert [e["on_error"] for e in _events(tmp_path, EventKind.MLFLOW_EXPORT_FAILED)] == ["fail"]


def test_the_model_servers_alias_moves_reach_mlflow(tmp_path: Path, tracking: str) -> None:
    """An operator's promote through `darkfab serve` moves `champion` in darkfab, and the server's hook moves it
    in MLflow too (exporting the version there first, as it was never mirrored)."""
    from mlflow.tracking import MlflowClient

    from darkfab.registry import Registry

    cli = _factory(tmp_path, f"registry: {{mlflow: {{tracking_uri: '{tracking}', registered_name: served}}}}\n")
    assert cli.json("run", "factory.yaml", timeout=600)["champion"]["version"] == 1
    with Store(f"sqlite:///{tmp_path / '.darkfab' / 'darkfab.db'}") as st:  # a second version to promote
        reg = Registry(st)
        first, blob = reg.load_bytes("exported", 1)
        register_copy(reg, "exported", first, blob, reason="a copy to promote (test)", lineage=first.lineage)
    port = free_port()
    server = cli.popen("serve", "--port", str(port))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        cli("promote", "2", "--url", f"http://127.0.0.1:{port}", "--reason", "the copy is better")
        while time.monotonic() < deadline and not _events(tmp_path, EventKind.MLFLOW_ALIASES_SET):
            time.sleep(0.5)
    finally:
        server.terminate()
        server.communicate(timeout=60)
    [moved] = _events(tmp_path, EventKind.MLFLOW_ALIASES_SET)
    assert "promoted to v2 by an operator: the copy is better" in str(moved["reason"])
    assert moved["exported"] == [2]
    client = MlflowClient(tracking_uri=tracking)
    assert client.get_model_version_by_alias("served", "champion").version == moved["aliases"]["champion"]
    assert moved["aliases"]["champion"] != client.get_model_version("served", "1").version
