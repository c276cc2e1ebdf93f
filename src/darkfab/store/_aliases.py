"""Aliases (``champion``, ``challenger`` ...): moving, deleting, reading them, and several changes decided together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, StoreError
from ..events import EventKind
from ._base import Repository, check_name, json_dict
from ._schema import aliases, events, model_versions


class Aliases(Repository):
    """The ``aliases`` table; every move or deletion appends its event (``alias_set``, ``alias_deleted``)."""

    @staticmethod
    def check_alias(alias: Any) -> str:
        """``alias`` when it can name an alias: a non-empty string that is not a number (numbers name versions)."""
        check_name(alias, "an alias")
        if alias.strip().isdigit():
            raise StoreError(
                f"alias {alias!r} is a number, and numbers name versions; fix: use a name such as 'champion'"
            )
        return alias

    def set_alias(self, factory_id: int, alias: str, version: int, *, reason: str) -> None:
        """Point ``alias`` at ``version`` (event ``alias_set`` naming the previous holder, if any)."""
        self.check_alias(alias)
        now = self._base.clock()
        with self._base._write(f"set alias {alias!r}") as conn:
            self.move_alias(conn, now, factory_id, alias, version, reason=reason)

    def move_alias(
        self, conn: Connection, now: datetime, factory_id: int, alias: str, version: int, *, reason: str
    ) -> None:
        """Point ``alias`` at ``version`` inside the caller's transaction (event ``alias_set``); nothing when it
        already does."""
        exists = conn.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.factory_id == factory_id, model_versions.c.version == version
            )
        ).first()
        if exists is None:
            raise self.no_version(conn, factory_id, version)
        where = (aliases.c.factory_id == factory_id, aliases.c.alias == alias)
        previous = conn.execute(sa.select(aliases.c.version).where(*where)).scalar()
        if previous == version:
            return
        if previous is None:
            conn.execute(aliases.insert().values(factory_id=factory_id, alias=alias, version=version))
        else:
            conn.execute(aliases.update().where(*where).values(version=version))
        self._base._event(
            conn,
            now,
            kind=EventKind.ALIAS_SET,
            reason=reason,
            factory_id=factory_id,
            data={"alias": alias, "version": version, "previous": previous},
        )

    def no_version(self, conn: Connection, factory_id: int, ref: int | str) -> NotFoundError:
        """The error for a version or alias the factory lacks, naming the versions and aliases it has."""
        name = self._base._factory_name(conn, factory_id)
        versions = list(
            conn.execute(
                sa.select(model_versions.c.version)
                .where(model_versions.c.factory_id == factory_id)
                .order_by(model_versions.c.version)
            ).scalars()
        )
        held = conn.execute(
            sa.select(aliases.c.alias, aliases.c.version)
            .where(aliases.c.factory_id == factory_id)
            .order_by(aliases.c.alias)
        ).all()
        what = f"version {ref}" if isinstance(ref, int) else f"alias {ref!r}"
        if not versions:
            last_gate = conn.execute(
                sa.select(events.c.reason)
                .where(events.c.factory_id == factory_id, events.c.kind == EventKind.GATE_VERDICT.value)
                .order_by(events.c.id.desc())
                .limit(1)
            ).scalar()
            said = f" (the last gate: {last_gate})" if last_gate else ""
            return NotFoundError(
                f"factory {name!r} has no {what}: no model version is registered yet{said}; "
                "fix: run a campaign until a model passes the gate"
            )
        shown_aliases = ", ".join(f"{a} -> {v}" for a, v in held) or "(none)"
        return NotFoundError(
            f"factory {name!r} has no {what}; versions: {', '.join(map(str, versions))}; "
            f"aliases: {shown_aliases}; fix: use one of those"
        )

    def aliases(self, factory_id: int) -> dict[str, int]:
        """Every alias of the factory and the version it points at; one small indexed query (cheap to poll)."""
        query = sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.factory_id == factory_id)
        with self._base._read("read aliases") as conn:
            return {alias: version for alias, version in conn.execute(query)}

    def delete_alias(self, factory_id: int, alias: str, *, reason: str) -> int | None:
        """Remove ``alias`` (event ``alias_deleted`` naming the version it pointed at).

        Returns that version, or None (and no event) when the alias did not exist.
        """
        check_name(alias, "an alias")
        now = self._base.clock()
        with self._base._write(f"delete alias {alias!r}") as conn:
            return self._delete(conn, now, factory_id, alias, reason=reason)

    def change_aliases(
        self,
        factory_id: int,
        *,
        reason: str,
        expect: Mapping[str, int | None] | None = None,
        move: Mapping[str, int] | None = None,
        delete: Iterable[str] = (),
        kind: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Several alias changes and the decision behind them as ONE transaction.

        ``expect`` guards the change: each alias must point at the given version (None: must not exist),
        else nothing is written and False is returned (another process moved it first). Then an event
        ``kind`` with ``data`` records the decision (when ``kind`` is given), each ``move`` is applied
        (events ``alias_set``) and each alias in ``delete`` removed (events ``alias_deleted``).
        """
        moves = dict(move or {})
        deletes = [check_name(a, "an alias") for a in delete]
        for alias in moves:
            self.check_alias(alias)
        clash = sorted(set(moves) & set(deletes))
        if clash:
            raise StoreError(f"alias(es) {clash} cannot be both moved and deleted in one change; fix: pick one")
        payload = json_dict(data or {}, f"the data of event {kind!r}") if kind is not None else {}
        if kind is not None:
            check_name(kind, "an event kind")
        now = self._base.clock()
        with self._base._write("change aliases") as conn:
            if expect:
                held = dict(
                    conn.execute(
                        sa.select(aliases.c.alias, aliases.c.version).where(
                            aliases.c.factory_id == factory_id, aliases.c.alias.in_(list(expect))
                        )
                    ).all()
                )
                if any(held.get(alias) != version for alias, version in expect.items()):
                    return False
            if kind is not None:
                self._base._event(conn, now, kind=kind, reason=reason, factory_id=factory_id, data=payload)
            for alias, version in moves.items():
                self.move_alias(conn, now, factory_id, alias, version, reason=reason)
            for alias in deletes:
                self._delete(conn, now, factory_id, alias, reason=reason)
        return True

    def _delete(self, conn: Connection, now: datetime, factory_id: int, alias: str, *, reason: str) -> int | None:
        where = (aliases.c.factory_id == factory_id, aliases.c.alias == alias)
        previous = conn.execute(sa.select(aliases.c.version).where(*where)).scalar()
        if previous is None:
            return None
        conn.execute(aliases.delete().where(*where))
        self._base._event(
            conn,
            now,
            kind=EventKind.ALIAS_DELETED,
            reason=reason,
            factory_id=factory_id,
            data={"alias": alias, "previous": previous},
        )
        return int(previous)
