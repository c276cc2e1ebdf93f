"""Alias changes beyond one move: reading them all, deleting one, and several moves decided together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ..errors import StoreError
from ._base import check_name, json_dict, utc_now
from ._schema import aliases


class AliasChanges:
    """Mixed into Store (it uses Store's transactions and ``_move_alias``)."""

    def aliases(self, factory_id: int) -> dict[str, int]:
        """Every alias of the factory and the version it points at; one small indexed query (cheap to poll)."""
        store: Any = self
        query = sa.select(aliases.c.alias, aliases.c.version).where(aliases.c.factory_id == factory_id)
        with store._read("read aliases") as conn:
            return {alias: version for alias, version in conn.execute(query)}

    def delete_alias(self, factory_id: int, alias: str, *, reason: str) -> int | None:
        """Remove ``alias`` (event ``alias_deleted`` naming the version it pointed at).

        Returns that version, or None (and no event) when the alias did not exist.
        """
        check_name(alias, "an alias")
        store: Any = self
        now = utc_now()
        with store._write(f"delete alias {alias!r}") as conn:
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
        store: Any = self
        moves = dict(move or {})
        deletes = [check_name(a, "an alias") for a in delete]
        for alias in moves:
            store._check_alias(alias)
        clash = sorted(set(moves) & set(deletes))
        if clash:
            raise StoreError(f"alias(es) {clash} cannot be both moved and deleted in one change; fix: pick one")
        payload = json_dict(data or {}, f"the data of event {kind!r}") if kind is not None else {}
        if kind is not None:
            check_name(kind, "an event kind")
        now = utc_now()
        with store._write("change aliases") as conn:
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
                store._event(conn, now, kind=kind, reason=reason, factory_id=factory_id, data=payload)
            for alias, version in moves.items():
                store._move_alias(conn, now, factory_id, alias, version, reason=reason)
            for alias in deletes:
                self._delete(conn, now, factory_id, alias, reason=reason)
        return True

    def _delete(self, conn: Any, now: Any, factory_id: int, alias: str, *, reason: str) -> int | None:
        store: Any = self
        where = (aliases.c.factory_id == factory_id, aliases.c.alias == alias)
        previous = conn.execute(sa.select(aliases.c.version).where(*where)).scalar()
        if previous is None:
            return None
        conn.execute(aliases.delete().where(*where))
        store._event(
            conn,
            now,
            kind="alias_deleted",
            reason=reason,
            factory_id=factory_id,
            data={"alias": alias, "previous": previous},
        )
        return int(previous)
