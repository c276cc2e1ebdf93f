"""Mirroring darkfab's registrations to another model registry: the factory file's ``registry.mlflow``.

The runtime calls :func:`mirror_version` after darkfab has registered a version (or moved an alias onto it);
the mirror reuses ``darkfab export mlflow`` (:func:`darkfab.export.export_mlflow`), which logs the version as
an MLflow run, registers it and sets the version's darkfab aliases on it. darkfab's own registry is the record:
the mirror runs after its transaction, so an MLflow failure never loses or blocks a registration. Each outcome
is an event on the factory's record: ``mlflow_exported`` (run id, registered version, aliases) or
``mlflow_export_failed`` (the reason; the store redacts every event). With ``on_error: fail`` a failure is
also raised, as a :class:`~darkfab.errors.DarkfabError` naming the version and how to retry it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import TYPE_CHECKING, Any

from .errors import DarkfabError
from .redact import redact

if TYPE_CHECKING:
    from .results import RunResult
    from .spec import FactorySpec, MlflowRegistrySpec
    from .store import Store

__all__ = ["MLFLOW_EXPORTED", "MLFLOW_EXPORT_FAILED", "mirror_run", "mirror_version"]

MLFLOW_EXPORTED = "mlflow_exported"
MLFLOW_EXPORT_FAILED = "mlflow_export_failed"

log = logging.getLogger(__name__)


def _export(store: Store, factory: str, version: int, target: MlflowRegistrySpec) -> dict[str, Any]:
    from .export import export_mlflow, load_version

    bundle = load_version(store, factory, version)
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints links to its UI; stdout may carry --json output
        done = export_mlflow(
            bundle,
            tracking_uri=target.tracking_uri,
            registered_name=target.registered_name,
            experiment=target.experiment,
        )
    return {"version": version, **done.as_json()}


def mirror_version(store: Store, spec: FactorySpec, version: int, *, campaign_id: int | None = None) -> bool | None:
    """Export ``version`` of ``spec.name`` to ``spec.registry.mlflow`` with its current aliases, and record the
    outcome as an event. None when no mirror is configured, True when exported, False when it failed under
    ``on_error: warn``; under ``on_error: fail`` a failure raises DarkfabError (after its event is recorded)."""
    target = spec.registry.mlflow
    if target is None:
        return None
    fid = store.get_factory(spec.name).id
    try:
        done = _export(store, spec.name, version, target)
    except Exception as exc:  # MLflow raises its own, requests' and OSError kinds: none may undo the registration
        why = redact(f"{type(exc).__name__}: {exc}" if not isinstance(exc, DarkfabError) else str(exc))
        store.append_event(
            kind=MLFLOW_EXPORT_FAILED,
            reason=f"version {version} was not mirrored to MLflow at {target.tracking_uri}: {why}; it stays "
            f"registered in darkfab; fix: `darkfab export mlflow {version} --tracking-uri {target.tracking_uri}` "
            "once the server answers",
            factory_id=fid,
            campaign_id=campaign_id,
            data={"version": version, "tracking_uri": target.tracking_uri, "error": why, "on_error": target.on_error},
        )
        if target.on_error == "fail":
            raise DarkfabError(
                f"{spec.name} v{version} is registered in darkfab but its MLflow export failed "
                f"(registry.mlflow.on_error: fail): {why}; fix: start the tracking server and run "
                f"`darkfab export mlflow {version} --tracking-uri {target.tracking_uri}`"
            ) from None
        log.warning("%s v%s not mirrored to MLflow: %s", spec.name, version, why)
        return False
    store.append_event(
        kind=MLFLOW_EXPORTED,
        reason=f"version {version} mirrored to MLflow as {done['registered_name']} version "
        f"{done['registered_version']} (run {done['run_id']})"
        + (f" with alias {', '.join(done['aliases'])}" if done["aliases"] else ""),
        factory_id=fid,
        campaign_id=campaign_id,
        data=done,
    )
    return True


def mirror_run(store: Store, spec: FactorySpec, result: RunResult) -> bool | None:
    """Mirror the version a run's gate registered (nothing when the gate registered none)."""
    if result.gate is None or not result.gate.get("passed") or result.champion is None:
        return None
    return mirror_version(store, spec, result.champion.version, campaign_id=result.campaign)
