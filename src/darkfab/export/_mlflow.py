"""`darkfab export mlflow`: a model version as an MLflow run and a registered pyfunc model.

The run carries the version's parameters, its validation metrics (``valid/<name>``) and its sealed-test
score with the bootstrap interval (``sealed_test/<metric>``, ``..._low``, ``..._high``), the lineage as
``darkfab.*`` tags (and whole as ``lineage.json``), and the model as a pyfunc with its input signature and
pinned requirements, darkfab's own code included. Registered, it gets the version's aliases
(``champion``/``challenger``).
"""

from __future__ import annotations

import inspect
import json
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DarkfabError
from ._bundle import VersionBundle, pinned_requirements

TAG_LIMIT = 5000  # MLflow's tag values are limited (5,000 characters on older servers)


@dataclass(frozen=True)
class MlflowExport:
    """Where the export went."""

    tracking_uri: str
    experiment_id: str
    run_id: str
    model_uri: str
    registered_name: str | None
    registered_version: str | None
    aliases: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "tracking_uri": self.tracking_uri,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "model_uri": self.model_uri,
            "registered_name": self.registered_name,
            "registered_version": self.registered_version,
            "aliases": list(self.aliases),
        }


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise DarkfabError(
            "MLflow is not installed; fix: pip install 'darkfab[mlflow]' (or mlflow into this environment)"
        ) from None
    return mlflow


def _reachable(tracking_uri: str) -> None:
    """Fail at once on a tracking server nobody answers at (MLflow itself retries for minutes)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    import httpx

    try:
        httpx.get(tracking_uri, timeout=10)
    except httpx.HTTPError as exc:
        raise DarkfabError(
            f"cannot reach the MLflow tracking server at {tracking_uri} ({exc}); fix: start it (`mlflow server`) "
            "or pass the right --tracking-uri"
        ) from None


def _metrics(bundle: VersionBundle) -> dict[str, float]:
    out: dict[str, float] = {}
    metrics = bundle.record.metrics
    for name, value in dict(metrics.get("valid") or {}).items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[f"valid/{name}"] = float(value)
    sealed = dict(metrics.get("sealed_test") or {})
    metric = sealed.get("metric")
    if metric:
        for key, suffix in (("score", ""), ("low", "_low"), ("high", "_high")):
            value = sealed.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out[f"sealed_test/{metric}{suffix}"] = float(value)
    return out


def _tags(bundle: VersionBundle) -> dict[str, str]:
    rec = bundle.record
    tags = {
        "darkfab.factory": bundle.factory,
        "darkfab.version": str(rec.version),
        "darkfab.artifact_sha256": rec.artifact_hash,
        "darkfab.trainer": rec.trainer,
        "darkfab.trial_id": str(rec.trial_id),
        "darkfab.aliases": ",".join(rec.aliases),
        "darkfab.created_at": str(rec.created_at),
    }
    for key, value in rec.lineage.items():
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        tags[f"darkfab.lineage.{key}"] = text[:TAG_LIMIT]
    return tags


def _signature(bundle: VersionBundle) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    model = bundle.model
    inputs = Schema(
        [ColSpec("double" if model.feature_types.get(f) == "numeric" else "string", f) for f in model.features]
    )
    if model.task == "regression":
        kind = "double"
    elif all(isinstance(c, (int,)) and not isinstance(c, bool) for c in model.classes):
        kind = "long"
    else:
        kind = "string"
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(kind)]))


def _log_model(mlflow: Any, folder: Path, bundle: VersionBundle, registered_name: str | None) -> Any:
    import darkfab

    from ._pyfunc import DarkfabPyfunc

    artifact = folder / "model.darkfab"
    artifact.write_bytes(bundle.artifact)
    kwargs: dict[str, Any] = {
        "python_model": DarkfabPyfunc(bundle.record.artifact_hash),
        "artifacts": {DarkfabPyfunc.ARTIFACT: str(artifact)},
        "code_paths": [str(Path(darkfab.__file__).parent)],
        "pip_requirements": [*pinned_requirements(bundle), f"mlflow=={mlflow.__version__}"],
        "signature": _signature(bundle),
        "registered_model_name": registered_name,
    }
    if "name" in inspect.signature(mlflow.pyfunc.log_model).parameters:  # MLflow 3
        kwargs["name"] = "model"
    else:
        kwargs["artifact_path"] = "model"
    return mlflow.pyfunc.log_model(**kwargs)


def export_mlflow(
    bundle: VersionBundle,
    *,
    tracking_uri: str,
    registered_name: str | None = None,
    experiment: str | None = None,
) -> MlflowExport:
    """Log ``bundle`` as a run of ``experiment`` (default: the factory's name) and register it as
    ``registered_name`` (default: the factory's name) with the version's aliases."""
    mlflow = _import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    name = registered_name or bundle.factory
    _reachable(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    try:
        exp = mlflow.set_experiment(experiment or bundle.factory)
        with (
            mlflow.start_run(run_name=f"{bundle.factory} v{bundle.version}") as run,
            tempfile.TemporaryDirectory() as tmp,
        ):
            params = {k: v for k, v in bundle.record.params.items() if not str(k).startswith("_")}
            mlflow.log_params({"trainer": bundle.record.trainer, **params})
            mlflow.log_metrics(_metrics(bundle))
            mlflow.set_tags(_tags(bundle))
            mlflow.log_dict(bundle.record.lineage, "lineage.json")
            info = _log_model(mlflow, Path(tmp), bundle, name)
            run_id = run.info.run_id
        version = getattr(info, "registered_model_version", None)
        client = MlflowClient(tracking_uri=tracking_uri)
        if version is None:  # MLflow 2 does not report it: the newest version of this run
            found = [v for v in client.search_model_versions(f"name='{name}'") if v.run_id == run_id]
            version = max((int(v.version) for v in found), default=None)
        if version is None:
            raise DarkfabError(f"MLflow at {tracking_uri} logged the model but did not register {name!r}")
        for alias in bundle.record.aliases:
            client.set_registered_model_alias(name, alias, str(version))
        client.set_model_version_tag(name, str(version), "darkfab.version", str(bundle.version))
    except MlflowException as exc:
        raise DarkfabError(
            f"MLflow at {tracking_uri} refused the export: {exc}; fix: check the tracking URI and that the "
            "server is reachable"
        ) from None
    return MlflowExport(
        tracking_uri=tracking_uri,
        experiment_id=exp.experiment_id,
        run_id=run_id,
        model_uri=str(info.model_uri),
        registered_name=name,
        registered_version=str(version),
        aliases=tuple(bundle.record.aliases),
    )


def mlflow_versions(*, tracking_uri: str, registered_name: str) -> dict[int, str]:
    """The MLflow versions of ``registered_name`` exported from darkfab, by darkfab version (the newest export
    of each); empty when the registered model does not exist yet."""
    _import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    _reachable(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        found = client.search_model_versions(f"name='{registered_name}'")
    except MlflowException as exc:
        raise DarkfabError(f"MLflow at {tracking_uri} refused to list {registered_name!r}: {exc}") from None
    out: dict[int, str] = {}
    for v in sorted(found, key=lambda v: int(v.version)):
        ours = (v.tags or {}).get("darkfab.version", "")
        if ours.isdigit():
            out[int(ours)] = str(v.version)
    return out


def set_mlflow_aliases(
    *, tracking_uri: str, registered_name: str, aliases: dict[str, str], delete: tuple[str, ...] = ()
) -> None:
    """Point each of ``aliases`` (alias -> MLflow version) at its version and drop the aliases in ``delete``
    that the registered model holds."""
    _import_mlflow()
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        for alias, version in aliases.items():
            client.set_registered_model_alias(registered_name, alias, version)
        held = client.get_registered_model(registered_name).aliases if delete else {}
        for alias in delete:
            if alias in held:
                client.delete_registered_model_alias(registered_name, alias)
    except MlflowException as exc:
        raise DarkfabError(
            f"MLflow at {tracking_uri} refused to move the aliases of {registered_name!r}: {exc}; fix: check the "
            "tracking URI and that the server is reachable"
        ) from None
