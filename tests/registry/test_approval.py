"""A person's approval of a pending gate winner, through the registry: the alias move the gate would have
made, the guard against acting on a version that is not pending, and the events naming who and why."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.errors import NotFoundError, StoreError
from darkfab.registry import PENDING, Registry
from darkfab.store import Store


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Store(str(tmp_path / "store" / "darkfab.db")) as s:
        s.ensure_factory("iris", {"name": "iris"})
        yield Registry(s)


def _register(registry: Registry, payload: bytes, alias: str, then: str | None = None) -> int:
    lineage = {"approval": {"required": True, "then": then}} if then else {}
    return registry.register(
        "iris",
        payload,
        trial_id=None,
        trainer="rf",
        params={},
        metrics={},
        lineage=lineage,
        aliases=(alias,),
        reason="a test registration",
    ).version


def test_approve_under_a_canary_makes_the_pending_version_challenger(registry: Registry) -> None:
    champion = _register(registry, b"one", "champion")
    waiting = _register(registry, b"two", PENDING, then="challenger")
    assert registry.pending("iris").version == waiting  # type: ignore[union-attr]
    decision = registry.approve("iris", waiting, person="ada", reason="canary it")
    assert decision.alias == "challenger"
    assert registry.aliases("iris") == {"champion": champion, "challenger": waiting}
    assert registry.pending("iris") is None
    (event,) = registry.store.list_events(kinds=("promotion_approved",))
    assert event.data == {"version": waiting, "alias": "challenger", "person": "ada", "reason": "canary it"}
    assert registry.store.verify_chain().ok


def test_approve_makes_it_champion_when_the_champion_it_was_to_face_is_gone(registry: Registry) -> None:
    waiting = _register(registry, b"two", PENDING, then="challenger")
    assert registry.approve("iris", waiting, person="ada", reason="ok").alias == "champion"
    assert registry.aliases("iris") == {"champion": waiting}


def test_reject_keeps_the_champion_and_the_version(registry: Registry) -> None:
    champion = _register(registry, b"one", "champion")
    waiting = _register(registry, b"two", PENDING, then="champion")
    assert registry.reject("iris", waiting, person="bob", reason="no").alias is None
    assert registry.aliases("iris") == {"champion": champion}
    assert [v.version for v in registry.versions("iris")] == [champion, waiting]


def test_only_the_pending_version_can_be_decided_and_a_reason_is_required(registry: Registry) -> None:
    champion = _register(registry, b"one", "champion")
    waiting = _register(registry, b"two", PENDING, then="champion")
    with pytest.raises(
        StoreError, match=rf"version {champion} of 'iris' is not pending approval \(version {waiting} is\)"
    ):
        registry.approve("iris", champion, person="ada", reason="x")
    with pytest.raises(NotFoundError, match="has no version 9"):
        registry.reject("iris", 9, person="ada", reason="x")
    with pytest.raises(StoreError, match="the reason is required"):
        registry.approve("iris", waiting, person="ada", reason=" ")
    with pytest.raises(StoreError, match="the person is required"):
        registry.approve("iris", waiting, person="", reason="x")
    assert registry.aliases("iris") == {"champion": champion, PENDING: waiting}
