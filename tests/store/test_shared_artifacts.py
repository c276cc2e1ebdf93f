"""A PostgreSQL store keeps artifacts too: a process on another machine (another artifacts folder) reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from darkfab.errors import IntegrityError, NotFoundError
from darkfab.registry import Registry
from darkfab.store import Store


def _register(registry: Registry, payload: bytes) -> int:
    lineage = {"parents": [], "data_fingerprint": "sha256:abc", "proposer": "tpe"}
    record = registry.register(
        "iris", payload, trial_id=None, trainer="rf", params={}, metrics={}, lineage=lineage, reason="test"
    )
    return record.version


@pytest.mark.postgres
def test_a_model_registered_on_one_machine_loads_on_another(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "machine-a"))
    with Store(pg_url) as a:
        assert a.keeps_artifacts
        a.ensure_factory("iris", {"name": "iris"})
        version = _register(Registry(a), b"model from machine a")
        _register(Registry(a), b"model from machine a")  # the same bytes again: kept once
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "machine-b"))
    with Store(pg_url) as b:
        registry = Registry(b)
        record, data = registry.load_bytes("iris", version)
        assert data == b"model from machine a"
        assert registry.artifacts.path(record.artifact_hash).read_bytes() == data  # cached on machine b
        with b._engine.begin() as conn:  # noqa: SLF001 - tamper with the kept copy, as an attacker would
            assert conn.execute(sa.text("SELECT count(*) FROM artifact_blobs")).scalar_one() == 1
            conn.execute(sa.text("UPDATE artifact_blobs SET data = :d"), {"d": b"tampered"})
        registry.artifacts.path(record.artifact_hash).unlink()
        with pytest.raises(IntegrityError, match="does not match its hash"):
            registry.load_bytes("iris", version)
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "machine-c"))
    monkeypatch.setenv("DARKFAB_ARTIFACTS_IN_STORE", "0")  # a shared folder instead: nothing read from the store
    with Store(pg_url) as c:
        assert not c.keeps_artifacts
        with pytest.raises(NotFoundError, match="restore the artifacts folder"):
            Registry(c).load_bytes("iris", version)


def test_a_sqlite_store_keeps_artifacts_in_its_folder_only(tmp_path: Path) -> None:
    with Store(str(tmp_path / "darkfab.db")) as s:
        assert not s.keeps_artifacts and Registry(s).artifacts.blobs is None
