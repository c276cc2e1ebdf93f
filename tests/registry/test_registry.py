"""The registry: content-addressed artifacts verified on every read, versions, aliases, lineage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.errors import IntegrityError, NotFoundError, StoreError
from darkfab.registry import ArtifactStore, Registry
from darkfab.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "store" / "darkfab.db")) as s:
        s.ensure_factory("iris", {"name": "iris"})
        yield s


@pytest.fixture
def registry(store: Store) -> Registry:
    return Registry(store)


def _register(registry: Registry, payload: bytes, *, parents: list[int] | None = None, **kw: object) -> int:
    record = registry.register(
        "iris",
        payload,
        trial_id=None,
        trainer="rf",
        params={"n_estimators": 100},
        metrics={"accuracy": 0.9},
        lineage={"parents": parents or [], "data_fingerprint": "sha256:abc", "proposer": "tpe"},
        reason=f"registered {payload!r}",
        **kw,  # type: ignore[arg-type]
    )
    return record.version


# -- ArtifactStore ---------------------------------------------------------------------------------


def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    arts = ArtifactStore(tmp_path / "a")
    digest, path = arts.put(b"model bytes")
    assert digest == hashlib.sha256(b"model bytes").hexdigest()
    assert path == tmp_path / "a" / "sha256" / digest[:2] / digest
    assert path.read_bytes() == b"model bytes"
    mtime = path.stat().st_mtime_ns
    assert arts.put(b"model bytes") == (digest, path)
    assert path.stat().st_mtime_ns == mtime  # not written again
    assert arts.get(digest) == b"model bytes"
    assert arts.relative_path(digest) == f"sha256/{digest[:2]}/{digest}"
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary files left behind


def test_a_tampered_artifact_raises_integrity_error(tmp_path: Path) -> None:
    arts = ArtifactStore(tmp_path)
    digest, path = arts.put(b"original")
    path.write_bytes(b"tampered")
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(IntegrityError) as info:
        arts.get(digest)
    assert str(path) in str(info.value) and digest in str(info.value) and actual in str(info.value)
    arts.put(b"original")  # storing the bytes again repairs the copy
    assert arts.get(digest) == b"original"


def test_missing_and_malformed_digests(tmp_path: Path) -> None:
    arts = ArtifactStore(tmp_path)
    with pytest.raises(NotFoundError, match="missing"):
        arts.get("0" * 64)
    with pytest.raises(StoreError, match="not a sha256 digest"):
        arts.get("../../etc/passwd")
    with pytest.raises(StoreError, match="must be bytes"):
        arts.put("text")  # type: ignore[arg-type]


# -- Registry --------------------------------------------------------------------------------------


def test_register_and_load_verified(registry: Registry, store: Store) -> None:
    v = registry.register(
        "iris",
        b"pickled model v1",
        trial_id=None,
        trainer="rf",
        params={"n": 1},
        metrics={"accuracy": 0.9},
        lineage={"proposer": "tpe"},
        aliases=("champion",),
        reason="first model to pass the gate",
    )
    assert v.version == 1 and v.aliases == ("champion",)
    assert (store.artifact_root / v.artifact_path).read_bytes() == b"pickled model v1"
    assert store.artifact_root == registry.artifacts.root
    record, data = registry.load_bytes("iris")
    assert data == b"pickled model v1" and record.version == 1 and record.artifact_hash == v.artifact_hash
    assert registry.load_bytes("iris", 1)[1] == b"pickled model v1"
    kinds = [e.kind for e in store.list_events(kinds=("registered", "alias_set"))]
    assert kinds == ["registered", "alias_set"]


def test_a_tampered_model_is_not_loaded(registry: Registry, store: Store) -> None:
    v = registry.register(
        "iris",
        b"good",
        trial_id=None,
        trainer="rf",
        params={},
        metrics={},
        lineage={},
        aliases=("champion",),
        reason="r",
    )
    (store.artifact_root / v.artifact_path).write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="does not match its hash"):
        registry.load_bytes("iris", "champion")


def test_aliases_move(registry: Registry) -> None:
    v1 = _register(registry, b"one", aliases=("champion",))
    v2 = _register(registry, b"two", aliases=("challenger",))
    registry.set_alias("iris", "champion", v2, reason="v2 beat v1 by 0.02 on the sealed test")
    registry.set_alias("iris", "challenger", v1, reason="keep v1 warm")
    assert registry.load_bytes("iris", "champion")[1] == b"two"
    assert [(v.version, v.aliases) for v in registry.versions("iris")] == [(1, ("challenger",)), (2, ("champion",))]
    with pytest.raises(NotFoundError, match=r"alias 'staging'.*versions: 1, 2"):
        registry.load_bytes("iris", "staging")
    with pytest.raises(NotFoundError, match="known factories: iris"):
        registry.versions("wine")


def test_same_bytes_twice_share_one_file(registry: Registry) -> None:
    a = registry.get("iris", _register(registry, b"same"))
    b = registry.get("iris", _register(registry, b"same"))
    assert (a.version, b.version) == (1, 2) and a.artifact_path == b.artifact_path


def test_lineage_follows_parents(registry: Registry) -> None:
    v1 = _register(registry, b"root")
    v2 = _register(registry, b"child", parents=[v1])
    v3 = _register(registry, b"other root")
    v4 = _register(registry, b"grandchild", parents=[v2, v3])
    out = registry.lineage("iris", v4)
    assert out["version"] == v4 and out["lineage"]["parents"] == [v2, v3]
    assert out["lineage"]["data_fingerprint"] == "sha256:abc"
    assert [a["version"] for a in out["ancestors"]] == [v2, v3, v1]  # nearest first, each once
    assert out["ancestors"][2]["artifact_hash"] == hashlib.sha256(b"root").hexdigest()
    assert out["missing"] == []
    assert registry.lineage("iris", v1)["ancestors"] == []


def test_lineage_parents_must_be_versions(registry: Registry, store: Store) -> None:
    _register(registry, b"root")
    with pytest.raises(StoreError, match=r"\[7\].*version numbers"):
        _register(registry, b"orphan", parents=[7])
    # a version recorded without the registry's check still reports what it cannot find
    fid = store.get_factory("iris").id
    v = store.add_model_version(
        fid,
        artifact_hash="0" * 64,
        artifact_path="x",
        trial_id=None,
        trainer="t",
        params={},
        metrics={},
        lineage={"parents": [1, 99]},
        reason="imported",
    )
    out = registry.lineage("iris", v.version)
    assert [a["version"] for a in out["ancestors"]] == [1] and out["missing"] == [99]
