"""Model versions with lineage and aliases, over the store and the content-addressed artifact files."""

from __future__ import annotations

from collections import deque
from typing import Any

from ..errors import StoreError
from ..store import ModelVersionRecord, Store
from . import _approval
from ._artifacts import ArtifactStore


def _summary(record: ModelVersionRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "artifact_hash": record.artifact_hash,
        "trial_id": record.trial_id,
        "trainer": record.trainer,
        "params": record.params,
        "metrics": record.metrics,
        "created_at": record.created_at.isoformat(),
        "aliases": list(record.aliases),
        "lineage": record.lineage,
    }


def _parents(lineage: dict[str, Any]) -> list[Any]:
    raw = lineage.get("parents", [])
    return list(raw) if isinstance(raw, (list, tuple)) else [raw]


class Registry:
    """Registered models of every factory in a store. Artifacts live under ``store.artifact_root``.

    The registry hands out bytes, verified against their hash; it never unpickles anything.
    ``lineage["parents"]``, when present, lists the version numbers (of the same factory) a model
    descends from; other lineage keys are the caller's to choose.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.artifacts = ArtifactStore(store.artifact_root, store if store.keeps_artifacts else None)

    def __repr__(self) -> str:
        return f"Registry({self.store!r}, artifacts={str(self.artifacts.root)!r})"

    def register(
        self,
        factory: str,
        artifact: bytes,
        *,
        trial_id: int | None,
        trainer: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        lineage: dict[str, Any],
        aliases: tuple[str, ...] = (),
        reason: str,
    ) -> ModelVersionRecord:
        """Store the artifact and record version N+1 of ``factory``, pointing ``aliases`` at it.

        The version row, its ``registered`` event and the alias moves are one transaction. The artifact
        file is written first: if the transaction fails, an unreferenced file is all that is left.
        """
        record = self.store.get_factory(factory)
        parents = _parents(lineage)
        if parents:
            known = {v.version for v in self.store.list_model_versions(record.id)}
            bad = [p for p in parents if isinstance(p, bool) or not isinstance(p, int) or p not in known]
            if bad:
                raise StoreError(
                    f"lineage['parents'] of the new {factory!r} model names {bad}, which are not versions of "
                    f"{factory!r} (versions: {sorted(known) or 'none yet'}); lineage['parents'] holds version "
                    "numbers of this factory's models; fix: put trial ids or other references under another key"
                )
        digest, _ = self.artifacts.put(artifact)
        return self.store.add_model_version(
            record.id,
            artifact_hash=digest,
            artifact_path=self.artifacts.relative_path(digest),
            trial_id=trial_id,
            trainer=trainer,
            params=params,
            metrics=metrics,
            lineage=lineage,
            reason=reason,
            aliases=tuple(aliases),
        )

    def set_alias(self, factory: str, alias: str, version: int, *, reason: str) -> None:
        """Point ``alias`` (e.g. ``champion``) at ``version``; the move is recorded with its reason."""
        self.store.set_alias(self.store.get_factory(factory).id, alias, version, reason=reason)

    def delete_alias(self, factory: str, alias: str, *, reason: str) -> int | None:
        """Remove ``alias`` (e.g. ``challenger``), recorded with its reason; the version it held, or None."""
        return self.store.delete_alias(self.store.get_factory(factory).id, alias, reason=reason)

    def pending(self, factory: str) -> ModelVersionRecord | None:
        """The gate winner waiting for a person's approval (alias ``pending``), or None."""
        held = self.aliases(factory).get(_approval.PENDING)
        return None if held is None else self.get(factory, held)

    def approve(self, factory: str, version: int, *, person: str, reason: str) -> _approval.Decision:
        """Promote the pending ``version`` as the gate would have (see :func:`darkfab.registry.approve`)."""
        return _approval.approve(self, factory, version, person=person, reason=reason)

    def reject(self, factory: str, version: int, *, person: str, reason: str) -> _approval.Decision:
        """Drop the pending ``version`` and leave the champion (see :func:`darkfab.registry.reject`)."""
        return _approval.reject(self, factory, version, person=person, reason=reason)

    def aliases(self, factory: str) -> dict[str, int]:
        """Every alias of ``factory`` and the version it points at."""
        return self.store.aliases(self.store.get_factory(factory).id)

    def get(self, factory: str, ref: int | str = "champion") -> ModelVersionRecord:
        """The version record by number or alias, without reading the artifact."""
        return self.store.get_model_version(self.store.get_factory(factory).id, ref)

    def load_bytes(self, factory: str, ref: int | str = "champion") -> tuple[ModelVersionRecord, bytes]:
        """The version and its artifact bytes, verified against the recorded sha256, which is itself checked
        against the version's registration in the keyed audit chain (IntegrityError when the store was altered)."""
        record = self.get(factory, ref)
        self.store.check_registration(record.factory_id, record.version, record.artifact_hash)
        return record, self.artifacts.get(record.artifact_hash)

    def versions(self, factory: str) -> list[ModelVersionRecord]:
        """Every version of ``factory``, oldest first, with the aliases pointing at each."""
        return self.store.list_model_versions(self.store.get_factory(factory).id)

    def lineage(self, factory: str, ref: int | str) -> dict[str, Any]:
        """Where a version came from: its own record and lineage, then its ancestors.

        Returns ``{"version", "artifact_hash", "trial_id", "trainer", "params", "metrics", "created_at",
        "aliases", "lineage", "ancestors", "missing"}``; ``ancestors`` holds the same summary (without
        ``ancestors``) for every version reachable through ``lineage["parents"]``, nearest first, each once;
        ``missing`` lists parent references that name no registered version.
        """
        factory_id = self.store.get_factory(factory).id
        by_version = {v.version: v for v in self.store.list_model_versions(factory_id)}
        start = self.store.get_model_version(factory_id, ref)
        out = _summary(by_version.get(start.version, start))
        ancestors: list[dict[str, Any]] = []
        missing: list[Any] = []
        seen = {start.version}
        queue = deque(_parents(start.lineage))
        while queue:
            parent = queue.popleft()
            if isinstance(parent, int) and not isinstance(parent, bool) and parent in seen:
                continue
            found = by_version.get(parent) if isinstance(parent, int) and not isinstance(parent, bool) else None
            if found is None:
                if parent not in missing:
                    missing.append(parent)
                continue
            seen.add(found.version)
            ancestors.append(_summary(found))
            queue.extend(_parents(found.lineage))
        out["ancestors"] = ancestors
        out["missing"] = missing
        return out
