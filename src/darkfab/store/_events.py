"""The event log's own API: appending a decision no other method records, reading events, and checking the chain."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import IntegrityError
from ..events import EventKind
from ._audit import SWITCH_KIND
from ._base import Repository, check_name, json_dict
from ._records import ChainReport, EventRecord
from ._schema import events, factories
from ._sql import EVENT_SELECT, LAST_EVENT, event_record
from ._verify import event_is_genuine, is_legacy, verify_events


class EventLog(Repository):
    """The ``events`` table, read and checked; every other repository appends through ``StoreBase._event``."""

    def append_event(
        self,
        *,
        kind: str,
        reason: str,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        trial_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Record a decision that no other method records (a gate verdict, a pause, a person's overrule)."""
        check_name(kind, "an event kind")
        kind = str(kind)  # an EventKind is named by its value in messages ('gate_verdict', not <EventKind...>)
        payload = json_dict(data or {}, f"the data of event {kind!r}")
        with self._base._write(f"append event {kind!r}") as conn:
            return self._base._event(
                conn,
                self._base.clock(),
                kind=kind,
                reason=reason,
                factory_id=factory_id,
                campaign_id=campaign_id,
                trial_id=trial_id,
                data=payload,
            )

    def list_events(
        self,
        *,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        kinds: tuple[str, ...] | None = None,
        limit: int | None = None,
        after_id: int = 0,
    ) -> list[EventRecord]:
        """Events oldest first; with ``limit``, the newest ``limit`` of them (still oldest first); with
        ``after_id``, only those appended after that event."""
        query = EVENT_SELECT
        if after_id:
            query = query.where(events.c.id > after_id)
        if factory_id is not None:
            query = query.where(events.c.factory_id == factory_id)
        if campaign_id is not None:
            query = query.where(events.c.campaign_id == campaign_id)
        if kinds is not None:
            query = query.where(events.c.kind.in_(list(kinds)))
        newest_first = limit is not None
        query = query.order_by(events.c.id.desc() if newest_first else events.c.id).limit(limit)
        with self._base._read("list events") as conn:
            found = [event_record(r) for r in conn.execute(query)]
        if newest_first:
            found.reverse()
        return found

    def check_registration(self, factory_id: int, version: int, artifact_hash: str) -> None:
        """IntegrityError unless ``artifact_hash`` is what the chained ``registered`` event of the version says.

        Reads the factory's registrations only, and checks that event's own keyed hash: a model_versions row
        pointed at another artifact, or a registration event edited to match it, is refused before serving.
        (Links between events are checked by :meth:`verify_chain`.)
        """
        if self._base._key_error is not None:
            raise self._base._key_error
        query = EVENT_SELECT.where(events.c.factory_id == factory_id, events.c.kind == EventKind.REGISTERED).order_by(
            events.c.id
        )
        with self._base._read("read the registration of a model version") as conn:
            switch_id = conn.execute(sa.select(sa.func.min(events.c.id)).where(events.c.kind == SWITCH_KIND)).scalar()
            found = [r for r in conn.execute(query) if isinstance(r.data, dict) and r.data.get("version") == version]
            name = self._base._factory_name(conn, factory_id)
        fix = "fix: run `darkfab audit verify`, and restore the store from a backup"
        if not found:
            raise IntegrityError(
                f"version {version} of factory {name!r} has no registration in the audit chain, so its artifact "
                f"cannot be trusted; refusing to load it; {fix}"
            )
        row = found[-1]
        legacy = switch_id is not None and row.id < switch_id
        genuine = is_legacy(row) if legacy else event_is_genuine(row, self._base._key)
        chained = row.data.get("artifact_hash")
        if not genuine or (chained is not None and chained != artifact_hash):
            what = (
                f"its registration event {row.id} does not match its keyed hash"
                if not genuine
                else f"its artifact hash {artifact_hash[:12]}... does not match its chained registration "
                f"(event {row.id}: {str(chained)[:12]}...)"
            )
            raise IntegrityError(
                f"version {version} of factory {name!r}: {what}; the store was altered, and the model is refused; {fix}"
            )

    def audit_head(self) -> dict[str, Any]:
        """The chain's head for an external notary: the factories, how many events, the newest id and hash, now.

        Keep what it returns somewhere the store's writers cannot reach; a later log that does not contain
        that event with that hash, at that position, was rewritten.
        """
        with self._base._read("read the head of the event chain") as conn:
            count = int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
            last = conn.execute(LAST_EVENT).first()
            names = list(conn.execute(sa.select(factories.c.name).order_by(factories.c.id)).scalars())
        return {
            "store": self._base._shown,
            "factories": names,
            "count": count,
            "last_id": None if last is None else last.id,
            "last_hash": None if last is None else last.hash,
            "exported_at": self._base.clock().isoformat(),
        }

    def verify_chain(self) -> ChainReport:
        """Recompute every event's keyed hash and link, check the anchored head and cross-check the model
        versions and aliases against the chain; report the first event (or row) that does not verify.

        An event whose content changed fails its own hash (nobody without the audit key can recompute it); an
        event removed from the middle breaks the link of the one after it; removing the newest events leaves a
        chain shorter than its anchored head (the head file beside the store, see ``_audit``).
        """
        if self._base._key_error is not None and not self._base._key:
            return ChainReport(ok=False, checked=0, first_bad_id=None, message=str(self._base._key_error))
        with self._base._read("verify the event chain") as conn:
            report = verify_events(conn, key=self._base._key, head=self._base._head)
        if self._base._key_error is None:
            return report
        # a wrong key, or a log that ends under the unkeyed rule: the walk names the first event that fails
        return ChainReport(
            ok=False,
            checked=report.checked,
            first_bad_id=report.first_bad_id,
            message=str(self._base._key_error) if report.ok else f"{report.message}; {self._base._key_error}",
        )
