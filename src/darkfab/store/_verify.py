"""Verifying the audit chain: every link and keyed hash, the anchored head, and the tables it vouches for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..events import EventKind
from ._audit import SWITCH_KIND, HeadAnchor
from ._codec import EVENT_FIELDS, GENESIS, event_hash, keyed_event_hash
from ._records import ChainReport
from ._schema import aliases, events, factories, model_versions
from ._sql import EVENT_SELECT

_BATCH = 2000


def _fields(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in EVENT_FIELDS}


def is_legacy(row: Any) -> bool:
    """Whether an event's hash follows the unkeyed rule of older stores (before the keyed audit chain)."""
    return bool(event_hash(row.prev_hash, **_fields(row)) == row.hash)


def event_is_genuine(row: Any, key: bytes) -> bool:
    """Whether one event row carries the hash the audit key gives it (its link is not checked)."""
    return keyed_event_hash(key, row.prev_hash, **_fields(row)) == row.hash


def _all_events(conn: Connection) -> Iterator[Any]:
    """Every event row, oldest first, read in batches."""
    last_id = 0
    while True:
        batch = conn.execute(EVENT_SELECT.where(events.c.id > last_id).order_by(events.c.id).limit(_BATCH)).all()
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


def verify_events(conn: Connection, *, key: bytes, head: HeadAnchor | None) -> ChainReport:
    """The report of :meth:`Store.verify_chain`, read through ``conn``."""
    anchored = head.read() if head is not None else None
    if anchored is not None and not anchored.valid:
        assert head is not None
        return ChainReport(
            ok=False,
            checked=0,
            first_bad_id=None,
            message=f"the audit head file {head.path} was altered, or this is not the audit key the store was written with (its MAC does not match); "
            "fix: compare the log with the head you last exported (`darkfab audit export`)",
        )
    # events before the first `chain_keyed` event were written by an older darkfab under the unkeyed rule
    switch_id = conn.execute(sa.select(sa.func.min(events.c.id)).where(events.c.kind == SWITCH_KIND)).scalar()
    checked = 0
    expected_prev, prev_id = GENESIS, None
    seen_head = False
    registered: dict[tuple[int, int], tuple[str | None, int]] = {}
    moved: dict[tuple[int, str], tuple[int, int]] = {}
    for row in _all_events(conn):
        checked += 1
        if row.prev_hash != expected_prev:
            after = f"event {prev_id}" if prev_id is not None else "the start of the log"
            return ChainReport(
                ok=False,
                checked=checked,
                first_bad_id=row.id,
                message=f"event {row.id} ({row.kind}) does not follow {after}: it links to "
                f"{row.prev_hash[:12]}... but {after} ends in {expected_prev[:12]}...; "
                "an event between them was removed or inserted",
            )
        legacy = switch_id is not None and row.id < switch_id
        genuine = is_legacy(row) if legacy else event_is_genuine(row, key)
        if not genuine:
            return ChainReport(
                ok=False,
                checked=checked,
                first_bad_id=row.id,
                message=f"event {row.id} ({row.kind}) does not match its hash: it was altered after it was "
                "written (or this is not the audit key the log was written with)",
            )
        if anchored is not None and row.id == anchored.last_id:
            seen_head = True
            if row.hash != anchored.last_hash or checked != anchored.count:
                return ChainReport(
                    ok=False,
                    checked=checked,
                    first_bad_id=row.id,
                    message=f"event {row.id} is not the one anchored in {head.path if head else ''}: the "
                    f"anchor records {anchored.count} events ending in {anchored.last_hash[:12]}..., the log "
                    f"has {checked} ending in {row.hash[:12]}...; the newest events were removed or replaced",
                )
        _collect(row, registered, moved)
        expected_prev, prev_id = row.hash, row.id
    if anchored is not None and not seen_head and anchored.count > 0:
        first_missing = (prev_id or 0) + 1
        assert head is not None
        return ChainReport(
            ok=False,
            checked=checked,
            first_bad_id=first_missing,
            message=f"the log ends at {f'event {prev_id}' if prev_id else 'no event'} ({checked} events) but its "
            f"head anchored in {head.path} at {anchored.updated_at} records {anchored.count} events ending with "
            f"event {anchored.last_id} ({anchored.last_hash[:12]}...): the newest events, from event "
            f"{first_missing} on, were removed",
        )
    mismatch = _cross_check(conn, registered, moved)
    if mismatch is not None:
        bad_id, message = mismatch
        return ChainReport(ok=False, checked=checked, first_bad_id=bad_id, message=message)
    head_text = "empty log" if prev_id is None else f"head event {prev_id}, hash {expected_prev}"
    behind = ""
    if anchored is not None and anchored.count < checked:
        behind = f"; {checked - anchored.count} events after the anchored head (a crash before it was written)"
    return ChainReport(
        ok=True, checked=checked, first_bad_id=None, message=f"{checked} events verify ({head_text}){behind}"
    )


def _collect(
    row: Any, registered: dict[tuple[int, int], tuple[str | None, int]], moved: dict[tuple[int, str], tuple[int, int]]
) -> None:
    data = row.data if isinstance(row.data, dict) else {}
    if row.factory_id is None:
        return
    if row.kind == EventKind.REGISTERED and isinstance(data.get("version"), int):
        registered[(row.factory_id, data["version"])] = (data.get("artifact_hash"), row.id)
    elif (
        row.kind == EventKind.ALIAS_SET and isinstance(data.get("alias"), str) and isinstance(data.get("version"), int)
    ):
        moved[(row.factory_id, data["alias"])] = (data["version"], row.id)
    elif row.kind == EventKind.ALIAS_DELETED and isinstance(data.get("alias"), str):
        moved.pop((row.factory_id, data["alias"]), None)


def _cross_check(
    conn: Connection,
    registered: dict[tuple[int, int], tuple[str | None, int]],
    moved: dict[tuple[int, str], tuple[int, int]],
) -> tuple[int | None, str] | None:
    """The first model version or alias row that the chain does not vouch for: (event id, message)."""
    names = dict(conn.execute(sa.select(factories.c.id, factories.c.name)).all())
    fix = "fix: restore the store from a backup, or set the row back to what the chain records"
    rows = conn.execute(
        sa.select(model_versions.c.factory_id, model_versions.c.version, model_versions.c.artifact_hash).order_by(
            model_versions.c.id
        )
    ).all()
    seen: set[tuple[int, int]] = set()
    for factory_id, version, artifact_hash in rows:
        seen.add((factory_id, version))
        chained = registered.get((factory_id, version))
        name = names.get(factory_id, factory_id)
        if chained is None:
            return None, (
                f"model version {version} of factory {name!r} has no registration in the event chain: "
                f"the row was added to model_versions by hand; {fix}"
            )
        chained_hash, event_id = chained
        if chained_hash is not None and chained_hash != artifact_hash:
            return event_id, (
                f"model version {version} of factory {name!r} has artifact hash {artifact_hash[:12]}... in "
                f"model_versions, but its chained registration (event {event_id}) says {chained_hash[:12]}...: "
                f"the row was altered to serve another artifact; {fix}"
            )
    for (factory_id, version), (_, event_id) in registered.items():
        if (factory_id, version) not in seen:
            return event_id, (
                f"model version {version} of factory {names.get(factory_id, factory_id)!r} was registered "
                f"(event {event_id}) but its model_versions row is gone; {fix}"
            )
    held = {(f, a): v for f, a, v in conn.execute(sa.select(aliases.c.factory_id, aliases.c.alias, aliases.c.version))}
    for (factory_id, alias), version in sorted(held.items()):
        name = names.get(factory_id, factory_id)
        chained_alias = moved.get((factory_id, alias))
        if chained_alias is None:
            return None, (
                f"alias {alias!r} of factory {name!r} points at version {version} in the aliases table, but no "
                f"chained alias move put it there; {fix}"
            )
        if chained_alias[0] != version:
            return chained_alias[1], (
                f"alias {alias!r} of factory {name!r} points at version {version} in the aliases table, but the "
                f"chain last moved it to version {chained_alias[0]} (event {chained_alias[1]}); {fix}"
            )
    for (factory_id, alias), (version, event_id) in sorted(moved.items()):
        if (factory_id, alias) not in held:
            return event_id, (
                f"alias {alias!r} of factory {names.get(factory_id, factory_id)!r} should point at version "
                f"{version} (event {event_id}) but the aliases table has no such row; {fix}"
            )
    return None
