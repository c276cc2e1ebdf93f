"""The same factory file on the Ray backend; the cluster files a user builds from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="needs the ray extra")
@pytest.mark.slow
def test_a_factory_runs_on_ray_with_the_same_file_and_commands(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(
        "name: onray\ndata: {source: sklearn:breast_cancer}\ntrainers: [logistic_regression, random_forest]\n"
        "budget: {trials: 4}\nexecution: {backend: ray, workers: 2, memory_mb: 1024, latency_rows: 2}\n"
        "gate: {bootstrap: 200}\n"
    )
    result = cli.json("run", "factory.yaml", timeout=300)
    assert result["trials"]["completed"] == 4 and result["champion"]["version"] == 1
    workers = {t["resources"]["worker"] for t in cli.json("trials")}
    assert workers and all(w.startswith("ray-") for w in workers)


def test_kuberay_manifest_and_image_are_consistent():
    docs = list(yaml.safe_load_all((REPO / "deploy" / "kuberay" / "raycluster.yaml").read_text()))
    cluster = next(d for d in docs if d["kind"] == "RayCluster")
    assert cluster["apiVersion"].startswith("ray.io/")
    head = cluster["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    workers = cluster["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert head["image"] == workers["image"]
    job = next(d for d in docs if d["kind"] == "RayJob")
    assert "darkfab run" in job["spec"]["entrypoint"] and "postgresql" in job["spec"]["entrypoint"]
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert "pip install" in dockerfile and ".[ray,postgres]" in dockerfile
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "ray = [" in pyproject and "postgres = [" in pyproject
