"""Model versions: registering version N+1 of a factory (with its aliases), reading versions by number or alias."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import NotFoundError
from ..events import EventKind
from ._aliases import Aliases
from ._base import Repository, StoreBase, inserted_id, json_dict, version_ref
from ._records import ModelVersionRecord
from ._schema import aliases, model_versions, trials
from ._sql import INSERT_MODEL_VERSION, MODEL_VERSION_SELECT, NEXT_VERSION, model_version_record


class ModelVersions(Repository):
    """The ``model_versions`` table; the aliases that point at a version come from :class:`Aliases`."""

    def __init__(self, base: StoreBase, alias_repo: Aliases) -> None:
        super().__init__(base)
        self._aliases = alias_repo

    def add_model_version(
        self,
        factory_id: int,
        *,
        artifact_hash: str,
        artifact_path: str,
        trial_id: int | None,
        trainer: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        lineage: dict[str, Any],
        reason: str,
        aliases: tuple[str, ...] = (),
    ) -> ModelVersionRecord:
        """Register version N+1 of the factory (event ``registered``), then point ``aliases`` at it."""
        params = json_dict(params, "a model version's params")
        metrics = json_dict(metrics, "a model version's metrics")
        lineage = json_dict(lineage, "a model version's lineage")
        for alias in aliases:
            self._aliases.check_alias(alias)
        now = self._base.clock()
        with self._base._write("register a model version") as conn:
            name = self._base._factory_name(conn, factory_id)
            if (
                trial_id is not None
                and conn.execute(sa.select(trials.c.id).where(trials.c.id == trial_id)).first() is None
            ):
                raise NotFoundError(f"cannot register a model of factory {name!r} from trial {trial_id}: no such trial")
            version = conn.execute(NEXT_VERSION, {"b_factory_id": factory_id}).scalar_one()
            values: dict[str, Any] = {
                "factory_id": factory_id,
                "version": version,
                "artifact_hash": artifact_hash,
                "artifact_path": artifact_path,
                "trial_id": trial_id,
                "trainer": trainer,
                "params": params,
                "metrics": metrics,
                "lineage": lineage,
                "created_at": now,
            }
            new_id = inserted_id(conn.execute(INSERT_MODEL_VERSION, values))
            self._base._event(
                conn,
                now,
                kind=EventKind.REGISTERED,
                reason=reason,
                factory_id=factory_id,
                trial_id=trial_id,
                data={"version": version, "artifact_hash": artifact_hash, "trainer": trainer},
            )
            for alias in aliases:
                self._aliases.move_alias(conn, now, factory_id, alias, version, reason=reason)
        return ModelVersionRecord(id=new_id, aliases=tuple(sorted(set(aliases))), **values)

    def get_model_version(self, factory_id: int, ref: int | str) -> ModelVersionRecord:
        """A version by number (``3`` or ``"3"``) or by alias (``"champion"``)."""
        ref = version_ref(ref)
        with self._base._read("read a model version") as conn:
            if isinstance(ref, int):
                version: int | None = ref
            else:
                version = conn.execute(
                    sa.select(aliases.c.version).where(aliases.c.factory_id == factory_id, aliases.c.alias == ref)
                ).scalar()
            row = None
            if version is not None:
                row = conn.execute(
                    MODEL_VERSION_SELECT.where(
                        model_versions.c.factory_id == factory_id, model_versions.c.version == version
                    )
                ).first()
            if row is None:
                raise self._aliases.no_version(conn, factory_id, ref)
            held = conn.execute(
                sa.select(aliases.c.alias)
                .where(aliases.c.factory_id == factory_id, aliases.c.version == row.version)
                .order_by(aliases.c.alias)
            ).scalars()
            return model_version_record(row, tuple(held))

    def list_model_versions(self, factory_id: int) -> list[ModelVersionRecord]:
        """Every version of the factory, oldest first, each with the aliases that point at it now."""
        with self._base._read("list model versions") as conn:
            held: dict[int, list[str]] = {}
            for alias, version in conn.execute(
                sa.select(aliases.c.alias, aliases.c.version)
                .where(aliases.c.factory_id == factory_id)
                .order_by(aliases.c.alias)
            ):
                held.setdefault(version, []).append(alias)
            rows = conn.execute(
                MODEL_VERSION_SELECT.where(model_versions.c.factory_id == factory_id).order_by(model_versions.c.version)
            )
            return [model_version_record(r, tuple(held.get(r.version, ()))) for r in rows]
