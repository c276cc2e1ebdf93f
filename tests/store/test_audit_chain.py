"""The keyed audit chain on every backend, attacked through the database as someone without the key would."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from darkfab.errors import StoreError
from darkfab.store import Store, metadata

events = metadata.tables["events"]  # the attacker reads the rows as the store wrote them


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'darkfab.db'}"
        return
    # PostgreSQL: the operator gives the key and a head file (the documented way for a shared server)
    monkeypatch.setenv("DARKFAB_AUDIT_KEY", "k" * 8 + "operator-given-key")
    monkeypatch.setenv("DARKFAB_AUDIT_HEAD", str(tmp_path / "pg.head"))
    yield request.getfixturevalue("pg_clean_url")


def _fill(store: Store) -> None:
    f = store.ensure_factory("f", {})
    c = store.create_campaign(f.id, budget={}, trigger="manual", seed=0, data_fingerprint="x")
    for i in range(4):
        t = store.add_trial(c.id, proposer="p", trainer="t", params={"i": i}, reason="r", start_as="w")
        store.finish_trial(t.id, state="completed", value=0.5 + i / 10)


def _unkeyed(prev: str, row: dict) -> str:
    """The chain's published unkeyed rule: sha256 over the previous hash and the event's canonical JSON."""
    fields = ("kind", "reason", "factory_id", "campaign_id", "trial_id", "data")
    body = {"created_at": row["created_at"].isoformat(), **{k: row[k] for k in fields}}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev + text).encode()).hexdigest()


def test_an_edited_event_rechained_without_the_key_fails(url: str) -> None:
    with Store(url) as store:
        _fill(store)
        target = store.list_events(kinds=("completed",))[0]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            rows = [
                dict(r._mapping)
                for r in conn.execute(sa.select(events).where(events.c.id >= target.id).order_by(events.c.id))
            ]
            prev = conn.execute(sa.select(events.c.hash).where(events.c.id == target.id - 1)).scalar_one()
            # prev_hash is unique: move the old links out of the way first
            moved = sa.literal("x").concat(sa.cast(events.c.id, sa.String))
            conn.execute(sa.update(events).where(events.c.id >= target.id).values(prev_hash=moved))
            for row in rows:
                if row["id"] == target.id:
                    row["data"] = {**row["data"], "value": 1.0}
                digest = _unkeyed(prev, row)
                conn.execute(
                    sa.update(events)
                    .where(events.c.id == row["id"])
                    .values(data=row["data"], prev_hash=prev, hash=digest)
                )
                prev = digest
    finally:
        engine.dispose()
    with Store(url) as store:
        report = store.verify_chain()
    assert not report.ok and report.first_bad_id == target.id and "altered" in report.message


def test_deleting_the_newest_events_fails_against_the_head(url: str) -> None:
    with Store(url) as store:
        _fill(store)
        last = store.list_events()[-1].id
        assert store.verify_chain().ok
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM events WHERE id > :n"), {"n": last - 2})
    finally:
        engine.dispose()
    with Store(url) as store:
        report = store.verify_chain()
    assert not report.ok and report.first_bad_id == last - 1 and "removed" in report.message


def test_a_wrong_key_is_told_apart_from_no_key(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with Store(url) as store:
        _fill(store)
    monkeypatch.setenv("DARKFAB_AUDIT_KEY", "another-key-of-enough-length")
    with Store(url) as store:
        report = store.verify_chain()
        assert not report.ok and "not the key the log was written with" in report.message
        with pytest.raises(StoreError, match="audit key does not match"):  # and nothing is appended under it
            store.append_event(kind="note", reason="r")


def test_an_alias_moved_by_sql_is_named(url: str) -> None:
    with Store(url) as store:
        f = store.ensure_factory("f", {})
        for n in (1, 2):
            store.add_model_version(
                f.id,
                artifact_hash=f"{n}" * 64,
                artifact_path=f"sha256/{n}",
                trial_id=None,
                trainer="t",
                params={},
                metrics={},
                lineage={},
                reason="test",
                aliases=("champion",) if n == 1 else ("challenger",),
            )
        assert store.verify_chain().ok
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # promote the challenger without a decision on record
            conn.execute(sa.text("UPDATE aliases SET version = 2 WHERE alias = 'champion'"))
    finally:
        engine.dispose()
    with Store(url) as store:
        report = store.verify_chain()
    assert not report.ok and "alias 'champion'" in report.message and "version 1" in report.message
