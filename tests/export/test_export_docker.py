"""`darkfab export docker` and `darkfab export kserve`: the build context serves the model, the manifest parses."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from importlib import metadata

import httpx
import pandas as pd
import pytest
import yaml

from darkfab.registry import Registry
from darkfab.store import Store
from darkfab.train import load_model

from .conftest import Trained, free_port


def _dockerfile(ctx) -> dict[str, list[str]]:
    lines: dict[str, list[str]] = {}
    joined = (ctx / "Dockerfile").read_text().replace("\\\n", " ")
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            lines.setdefault(word, []).append(rest.strip())
    return lines


@pytest.mark.slow
def test_the_build_context_pins_everything_runs_as_a_user_and_its_entrypoint_serves_the_model(
    trained: Trained, tmp_path
):
    out = trained.cli.json("export", "docker", "champion", str(tmp_path / "ctx"))
    ctx = tmp_path / "ctx"
    assert out["context"] == str(ctx) and out["image"] == "darkfab-exported:v1"
    df = _dockerfile(ctx)
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm", df["FROM"][0])
    assert df["USER"] == ["10001"]
    assert "/v2/health/ready" in df["HEALTHCHECK"][0]
    reqs = [line for line in (ctx / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert reqs and all(re.fullmatch(r"[a-z0-9._-]+==[\w.+]+", r) for r in reqs), reqs
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in reqs
    assert not any(r.startswith(("torch", "ray", "nvidia")) for r in reqs)

    entry = json.loads(df["ENTRYPOINT"][0])
    assert entry[:4] == ["python", "-m", "darkfab", "serve"]
    port = free_port()
    cmd = [sys.executable if a == "python" else a for a in entry]
    cmd = ["127.0.0.1" if a == "0.0.0.0" else str(port) if a == "8080" else a for a in cmd]
    env = {**os.environ, "PYTHONPATH": str(ctx / "lib")}
    env.pop("DARKFAB_STORE", None)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(cmd, cwd=ctx, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                ready = httpx.get(f"{url}/v2/health/ready", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, log.read_text()
        recs = trained.records()
        answer = httpx.post(f"{url}/v1/models/exported/predict", json=recs, timeout=30).json()
        with Store(trained.store) as st:
            _, blob = Registry(st).load_bytes("exported", "champion")
        expected = load_model(blob).predict(pd.DataFrame(recs)).tolist()
        assert answer["predictions"] == expected
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_used_folder_or_an_unknown_version_is_refused_and_nothing_is_written(trained: Trained, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    proc = trained.cli("export", "docker", "champion", str(tmp_path / "used"), check=False)
    assert proc.returncode == 2 and "is not an empty folder" in proc.stderr and "Traceback" not in proc.stderr
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
    proc = trained.cli("export", "docker", "9", str(tmp_path / "new"), check=False)
    assert proc.returncode != 0 and "no version 9" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists() and [p.name for p in tmp_path.iterdir()] == ["used"]


def test_the_kserve_manifest_is_an_oip_v2_inference_service_running_the_image(trained: Trained, tmp_path):
    text = trained.cli("export", "kserve", "1", "--image", "registry.example/darkfab-exported:v1", "--namespace", "ml")
    manifest = yaml.safe_load(text.stdout)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
    meta = manifest["metadata"]
    assert meta["name"] == "exported-v1" and meta["namespace"] == "ml"
    assert meta["annotations"]["darkfab.io/protocol"] == "v2" and meta["annotations"]["darkfab.io/version"] == "1"
    (container,) = manifest["spec"]["predictor"]["containers"]
    assert container["image"] == "registry.example/darkfab-exported:v1"
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8080}
    assert container["securityContext"]["runAsNonRoot"] is True
    trained.cli("export", "kserve", "champion", "-o", str(tmp_path / "isvc.yaml"))
    assert yaml.safe_load((tmp_path / "isvc.yaml").read_text())["spec"]["predictor"]["containers"][0]["image"] == (
        "darkfab-exported:v1"
    )


@pytest.mark.slow
def test_the_context_requirements_resolve_on_the_package_index(trained: Trained, tmp_path):
    trained.cli("export", "docker", "champion", str(tmp_path / "ctx"))
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "-q", "-r", "requirements.txt"],
        cwd=tmp_path / "ctx",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_without_mlflow_the_export_names_the_extra_to_install(trained: Trained):
    try:
        import mlflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("MLflow is installed here; this checks the message people get without it")
    proc = trained.cli("export", "mlflow", "1", "--tracking-uri", "http://127.0.0.1:9", check=False)
    assert proc.returncode == 1 and "pip install 'darkfab[mlflow]'" in proc.stderr and "Traceback" not in proc.stderr
