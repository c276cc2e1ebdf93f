"""Pausing a factory in the store: the newer of ``factory_paused`` / ``factory_resumed`` decides, per factory,
and pausing twice or resuming what is not paused is refused with the fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.errors import StoreError
from darkfab.store import Pauses, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "store" / "darkfab.db")) as s:
        s.ensure_factory("a", {"name": "a"})
        s.ensure_factory("b", {"name": "b"})
        yield s


def test_pause_and_resume_one_factory_leaves_the_other(store: Store) -> None:
    pauses = Pauses(store)
    a, b = store.get_factory("a").id, store.get_factory("b").id
    assert pauses.state(a) is None
    held = pauses.pause(a, person="ada", reason="  bad   labels ")
    assert (held.person, held.reason) == ("ada", "bad labels")
    assert pauses.state(a) == held
    assert pauses.state(b) is None
    assert "fix: `darkfab resume-factory a`" in held.explain("a") and "bad labels" in held.explain("a")
    with pytest.raises(StoreError, match=r"factory 'a' is already paused \(by ada"):
        pauses.pause(a, person="bob", reason="again")
    assert pauses.resume(a, person="bob", reason="fixed") == held
    assert pauses.state(a) is None
    with pytest.raises(StoreError, match="factory 'a' is not paused"):
        pauses.resume(a, person="bob", reason="twice")
    assert pauses.pause(a, person="cy", reason="again").person == "cy"  # a pause after a resume counts
    kinds = [e.kind for e in store.list_events(factory_id=a, kinds=("factory_paused", "factory_resumed"))]
    assert kinds == ["factory_paused", "factory_resumed", "factory_paused"]
    assert store.verify_chain().ok


@pytest.mark.parametrize(("person", "reason", "what"), [("", "x", "the person"), ("ada", " ", "the reason")])
def test_a_pause_needs_a_person_and_a_reason(store: Store, person: str, reason: str, what: str) -> None:
    with pytest.raises(StoreError, match=f"{what} is required"):
        Pauses(store).pause(store.get_factory("a").id, person=person, reason=reason)
    assert Pauses(store).state(store.get_factory("a").id) is None
