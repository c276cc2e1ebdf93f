"""Mirroring darkfab's registrations to another model registry: the factory file's ``registry.mlflow``.

The runtime calls :func:`mirror_version` after darkfab has registered a version, and :func:`mirror_aliases`
after a person moved its aliases (``darkfab approve`` / ``reject``); both reuse ``darkfab export mlflow``
(:mod:`darkfab.export`), which logs a version as an MLflow run, registers it and sets its darkfab aliases on
it. darkfab's own registry is the record: the mirror runs after its transaction, so an MLflow failure never
loses or blocks a registration. Each outcome is an event on the factory's record: ``mlflow_exported`` (run id,
registered version, aliases), ``mlflow_aliases_set`` (alias -> MLflow version) or ``mlflow_export_failed``
(the reason; the store redacts every event). With ``on_error: fail`` a failure is also raised, as a
:class:`~darkfab.errors.DarkfabError` naming what darkfab kept and how to retry it.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import DarkfabError
from ..events import EventKind
from ..redact import redact

if TYPE_CHECKING:
    from ..results import RunResult
    from ..spec import FactorySpec, MlflowRegistrySpec
    from ..store import Store

__all__ = [
    "MANAGED_ALIASES",
    "alias_mirror",
    "mirror_aliases",
    "mirror_run",
    "mirror_version",
]

MANAGED_ALIASES = ("champion", "challenger", "pending")
"""The aliases darkfab moves; in MLflow, the mirror drops those darkfab no longer holds."""

log = logging.getLogger(__name__)


def _export(store: Store, factory: str, version: int, target: MlflowRegistrySpec) -> dict[str, Any]:
    from ..export import export_mlflow, load_version

    bundle = load_version(store, factory, version)
    with contextlib.redirect_stdout(sys.stderr):  # MLflow prints links to its UI; stdout may carry --json output
        done = export_mlflow(
            bundle,
            tracking_uri=target.tracking_uri,
            registered_name=target.registered_name,
            experiment=target.experiment,
        )
    return {"version": version, **done.as_json()}


def _attempt(
    store: Store,
    factory: str,
    target: MlflowRegistrySpec,
    what: str,
    act: Callable[[], dict[str, Any]],
    *,
    version: int | None = None,
    campaign_id: int | None = None,
) -> dict[str, Any] | None:
    """``act()``; on any failure, the event ``mlflow_export_failed`` and, under ``on_error: fail``, DarkfabError."""
    try:
        return act()
    except Exception as exc:  # MLflow raises its own, requests' and OSError kinds: none may undo darkfab's record
        why = redact(str(exc) if isinstance(exc, DarkfabError) else f"{type(exc).__name__}: {exc}")
        retry = f"darkfab export mlflow {version if version is not None else 'champion'} --tracking-uri {target.tracking_uri}"
        store.append_event(
            kind=EventKind.MLFLOW_EXPORT_FAILED,
            reason=f"{what} not mirrored to MLflow at {target.tracking_uri}: {why}; darkfab keeps its own record; "
            f"fix: `{retry}` once the server answers",
            factory_id=store.get_factory(factory).id,
            campaign_id=campaign_id,
            data={"what": what, "tracking_uri": target.tracking_uri, "error": why, "on_error": target.on_error}
            | ({"version": version} if version is not None else {}),
        )
        if target.on_error == "fail":
            raise DarkfabError(
                f"{factory}: {what} is recorded in darkfab but its MLflow export failed "
                f"(registry.mlflow.on_error: fail): {why}; fix: start the tracking server and run `{retry}`"
            ) from None
        log.warning("%s: %s not mirrored to MLflow: %s", factory, what, why)
        return None


def mirror_version(store: Store, spec: FactorySpec, version: int, *, campaign_id: int | None = None) -> bool | None:
    """Export ``version`` of ``spec.name`` to ``spec.registry.mlflow`` with its current aliases, and record the
    outcome as an event. None when no mirror is configured, True when exported, False when it failed under
    ``on_error: warn``; under ``on_error: fail`` a failure raises DarkfabError (after its event is recorded)."""
    target = spec.registry.mlflow
    if target is None:
        return None
    done = _attempt(
        store,
        spec.name,
        target,
        f"version {version}",
        lambda: _export(store, spec.name, version, target),
        version=version,
        campaign_id=campaign_id,
    )
    if done is None:
        return False
    store.append_event(
        kind=EventKind.MLFLOW_EXPORTED,
        reason=f"version {version} mirrored to MLflow as {done['registered_name']} version "
        f"{done['registered_version']} (run {done['run_id']})"
        + (f" with alias {', '.join(done['aliases'])}" if done["aliases"] else ""),
        factory_id=store.get_factory(spec.name).id,
        campaign_id=campaign_id,
        data=done,
    )
    return True


def _sync(store: Store, factory: str, target: MlflowRegistrySpec) -> dict[str, Any]:
    from ..export import mlflow_versions, set_mlflow_aliases
    from ..registry import Registry

    name = target.registered_name or factory
    held = {a: v for a, v in Registry(store).aliases(factory).items() if a in MANAGED_ALIASES}
    known = mlflow_versions(tracking_uri=target.tracking_uri, registered_name=name)
    exported = sorted({v for v in held.values() if v not in known})
    for version in exported:  # never mirrored (MLflow was down then): export it now, with its aliases
        known[version] = _export(store, factory, version, target)["registered_version"]
    moved = {alias: known[version] for alias, version in held.items()}
    dropped = tuple(a for a in MANAGED_ALIASES if a not in held)
    set_mlflow_aliases(tracking_uri=target.tracking_uri, registered_name=name, aliases=moved, delete=dropped)
    return {"registered_name": name, "aliases": moved, "dropped": list(dropped), "exported": exported}


def mirror_aliases(store: Store, factory: str, target: MlflowRegistrySpec | None, *, why: str) -> bool | None:
    """Give the MLflow versions mirrored from darkfab the aliases their darkfab versions hold now (exporting a
    version never mirrored), drop the managed aliases darkfab no longer holds, and record the outcome; ``why``
    names the move and ``target`` is the factory's ``registry.mlflow``. Returns and raises as
    :func:`mirror_version` does."""
    if target is None:
        return None
    done = _attempt(store, factory, target, f"the alias move ({why})", lambda: _sync(store, factory, target))
    if done is None:
        return False
    moved = ", ".join(f"{a} -> {v}" for a, v in done["aliases"].items()) or "none"
    store.append_event(
        kind=EventKind.MLFLOW_ALIASES_SET,
        reason=f"{why}: the aliases of MLflow's {done['registered_name']} follow darkfab's ({moved})",
        factory_id=store.get_factory(factory).id,
        data=done,
    )
    return True


def alias_mirror(store: Store, factory: str) -> Callable[[str], None] | None:
    """The hook to call after the aliases moved outside a campaign (a model server's canary or operator, the
    console): the factory's ``registry.mlflow`` mirror of the move, None when the factory mirrors nothing.

    The hook returns at once; the mirror runs in a daemon thread, so MLflow being slow or down never holds a
    request or a page (the outcome is recorded as an event; an error beyond that is logged).
    """
    from ..store import stored_spec

    target = stored_spec(store, factory).registry.mlflow
    if target is None:
        return None

    def mirror(why: str) -> None:
        try:
            mirror_aliases(store, factory, target, why=why)
        except Exception:  # noqa: BLE001 - a thread's error has nobody to reach but the log
            log.exception("mirroring %r's alias move to MLflow failed after: %s", factory, why)

    def hook(why: str) -> None:
        threading.Thread(target=mirror, args=(why,), name=f"darkfab-mirror-{factory}", daemon=True).start()

    return hook


def mirror_run(store: Store, spec: FactorySpec, result: RunResult) -> bool | None:
    """Mirror the version a run's gate registered (nothing when the gate registered none)."""
    if result.gate is None or not result.gate.passed or result.champion is None:
        return None
    return mirror_version(store, spec, result.champion.version, campaign_id=result.campaign)
