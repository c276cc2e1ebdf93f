"""One registered model version with everything an export needs, and the exact requirements to run it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from typing import Any

from ..registry import Registry
from ..store import ModelVersionRecord, Store
from ..train import DarkfabModel, load_model


@dataclass(frozen=True)
class VersionBundle:
    """A model version of ``factory``: its record, its verified artifact bytes and the factory's stored spec."""

    factory: str
    record: ModelVersionRecord
    artifact: bytes
    spec: dict[str, Any]

    @property
    def version(self) -> int:
        return self.record.version

    @cached_property
    def model(self) -> DarkfabModel:
        return load_model(self.artifact)

    @property
    def packages(self) -> dict[str, str]:
        """The package versions recorded in the lineage when the model was trained (``python`` included)."""
        return {str(k): str(v) for k, v in dict(self.record.lineage.get("packages") or {}).items()}


def load_version(store: Store, factory: str, ref: int | str) -> VersionBundle:
    """The version ``ref`` (number or alias) of ``factory``; NotFoundError naming the versions otherwise."""
    registry = Registry(store)
    record, blob = registry.load_bytes(factory, ref)
    return VersionBundle(factory=factory, record=record, artifact=blob, spec=store.get_factory(factory).spec)


_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_SAME_PACKAGE = ({"xgboost", "xgboost-cpu"},)
"""Distributions of one import package: only one of each group goes into the requirements."""
TARGET = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix", "extra": ""}
"""The platform the requirements are for: the Linux of a container image."""


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _applies(marker: str) -> bool:
    if not marker.strip():
        return True
    from packaging.markers import Marker

    return bool(Marker(marker).evaluate(dict(TARGET)))


def _twins(name: str) -> set[str]:
    return next((group for group in _SAME_PACKAGE if name in group), {name})


def pinned_requirements(bundle: VersionBundle) -> list[str]:
    """``name==version`` for every package darkfab needs to serve the model on Linux, darkfab itself excluded.

    The packages the lineage records (the model's own: numpy, scikit-learn, lightgbm...) get the recorded
    version; darkfab's other core dependencies get the installed version (the CPU build of XGBoost gets the
    version of whichever build is installed); a dependency installed nowhere keeps darkfab's own range.
    Extras are left out.
    """
    recorded = {k.lower(): v for k, v in bundle.packages.items() if k not in ("python", "darkfab")}
    pins: dict[str, str] = {}
    for line in metadata.requires("darkfab") or []:
        req, _, marker = line.partition(";")
        if "extra" in marker or not _applies(marker):
            continue
        match = _NAME.match(req.strip())
        if match is None:
            continue
        name = match.group(1).lower()
        twins = [name, *sorted(_twins(name) - {name})]
        version = next((recorded[t] for t in twins if t in recorded), None)
        version = version or next((v for v in map(_installed, twins) if v is not None), None)
        pins[name] = f"=={version}" if version is not None else req.strip()[len(name) :]
    for name, version in recorded.items():
        if not _twins(name) & set(pins):
            pins[name] = f"=={version}"
    return [f"{name}{spec}" for name, spec in sorted(pins.items())]
