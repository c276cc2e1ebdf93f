"""Store and Registry alias operations the router relies on: read all, delete, guarded multi-changes."""

from __future__ import annotations

import pytest

from darkfab.errors import StoreError
from darkfab.registry import Registry
from darkfab.store import Store


def test_aliases_and_delete_alias_record_an_event(fresh_store: Store) -> None:
    registry = Registry(fresh_store)
    fid = fresh_store.get_factory("kinds").id
    assert registry.aliases("kinds") == {"champion": 1, "challenger": 2}
    assert registry.delete_alias("kinds", "challenger", reason="not wanted") == 2
    assert fresh_store.aliases(fid) == {"champion": 1}
    event = fresh_store.list_events(factory_id=fid, limit=1)[0]
    assert (event.kind, event.reason, event.data) == (
        "alias_deleted",
        "not wanted",
        {"alias": "challenger", "previous": 2},
    )
    assert registry.delete_alias("kinds", "challenger", reason="again") is None  # nothing to delete, no event
    assert fresh_store.list_events(factory_id=fid, limit=1)[0].id == event.id
    assert registry.get("kinds", 2).aliases == ()
    assert fresh_store.verify_chain().ok


def test_change_aliases_is_one_guarded_transaction(fresh_store: Store) -> None:
    fid = fresh_store.get_factory("kinds").id
    before = len(fresh_store.list_events(factory_id=fid))
    # a stale expectation writes nothing
    assert not fresh_store.change_aliases(
        fid, reason="late", expect={"challenger": 3}, move={"champion": 2}, delete=("challenger",), kind="decided"
    )
    assert fresh_store.aliases(fid) == {"champion": 1, "challenger": 2}
    assert len(fresh_store.list_events(factory_id=fid)) == before

    assert fresh_store.change_aliases(
        fid,
        reason="challenger won",
        expect={"champion": 1, "challenger": 2},
        move={"champion": 2},
        delete=("challenger",),
        kind="decided",
        data={"figures": {"requests": 40}},
    )
    assert fresh_store.aliases(fid) == {"champion": 2}
    new = fresh_store.list_events(factory_id=fid)[before:]
    assert [e.kind for e in new] == ["decided", "alias_set", "alias_deleted"]
    assert all(e.reason == "challenger won" for e in new) and new[0].data == {"figures": {"requests": 40}}

    # a failure inside the transaction (unknown version) leaves everything as it was
    with pytest.raises(StoreError, match="no version 99"):
        fresh_store.change_aliases(fid, reason="bad", move={"champion": 99}, kind="decided")
    assert fresh_store.aliases(fid) == {"champion": 2}
    assert len(fresh_store.list_events(factory_id=fid)) == before + 3
    with pytest.raises(StoreError, match="both moved and deleted"):
        fresh_store.change_aliases(fid, reason="x", move={"champion": 1}, delete=("champion",))
    assert fresh_store.verify_chain().ok
