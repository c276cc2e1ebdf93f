"""The model registry: versions, lineage, aliases (``champion``, ``challenger``) and verified artifacts."""

from __future__ import annotations

from ._artifacts import ArtifactStore, sha256_hex
from ._registry import Registry

__all__ = ["ArtifactStore", "Registry", "sha256_hex"]
