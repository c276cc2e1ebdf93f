"""The model registry: versions, lineage, aliases (``champion``, ``challenger``, ``pending``), a person's
approval of a gate winner, and verified artifacts."""

from __future__ import annotations

from ._approval import APPROVAL_REQUESTED, APPROVED, PENDING, REJECTED, Decision, approve, reject
from ._artifacts import ArtifactStore, sha256_hex
from ._refs import LARGEST_VERSION, parse_version_ref
from ._registry import Registry

__all__ = [
    "APPROVAL_REQUESTED",
    "APPROVED",
    "LARGEST_VERSION",
    "PENDING",
    "REJECTED",
    "ArtifactStore",
    "Decision",
    "Registry",
    "approve",
    "parse_version_ref",
    "reject",
    "sha256_hex",
]
