"""Exports of a registered model to the tools people already run: MLflow, a container build context, KServe.

Each export reads one model version (its artifact, verified against its sha256, and its lineage) from the
store; none of them changes the store. MLflow is imported only by :func:`export_mlflow` (the ``mlflow`` extra).
"""

from __future__ import annotations

from ._bundle import VersionBundle, load_version, pinned_requirements
from ._docker import SERVE_PORT, export_docker, image_name
from ._kserve import kserve_manifest
from ._mlflow import MlflowExport, export_mlflow, mlflow_versions, set_mlflow_aliases

__all__ = [
    "SERVE_PORT",
    "MlflowExport",
    "VersionBundle",
    "export_docker",
    "export_mlflow",
    "image_name",
    "kserve_manifest",
    "load_version",
    "mlflow_versions",
    "pinned_requirements",
    "set_mlflow_aliases",
]
