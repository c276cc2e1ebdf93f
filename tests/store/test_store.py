"""Opening a store: URLs, migrations, errors that name the URL."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from darkfab.errors import StoreError
from darkfab.store import Store, alembic_config, current_revision, head_revision, metadata, resolve_store_url, upgrade

# -- URLs ------------------------------------------------------------------------------------------


def test_url_explicit_then_env_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DARKFAB_STORE", raising=False)
    assert resolve_store_url() == f"sqlite:///{tmp_path.resolve() / '.darkfab' / 'darkfab.db'}"
    monkeypatch.setenv("DARKFAB_STORE", "sqlite:///from-env.db")
    assert resolve_store_url() == f"sqlite:///{tmp_path.resolve() / 'from-env.db'}"
    assert resolve_store_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_store_url("runs/x.db") == f"sqlite:///{tmp_path.resolve() / 'runs' / 'x.db'}"
    assert resolve_store_url(str(tmp_path / "y.db")) == f"sqlite:///{tmp_path.resolve() / 'y.db'}"
    assert resolve_store_url("postgresql://u:pw@h:5433/db") == "postgresql+psycopg://u:pw@h:5433/db"
    assert resolve_store_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert resolve_store_url("sqlite://") == "sqlite://"
    with pytest.raises(StoreError, match="empty"):
        resolve_store_url("  ")


def test_artifacts_sit_next_to_a_sqlite_database(tmp_path: Path) -> None:
    with Store(str(tmp_path / "deep" / "er" / "d.db")) as store:
        assert store.url == f"sqlite:///{tmp_path.resolve() / 'deep' / 'er' / 'd.db'}"
        assert store.artifact_root == tmp_path.resolve() / "deep" / "er" / "artifacts"
        assert (tmp_path / "deep" / "er" / "d.db").is_file()


# -- migrations ------------------------------------------------------------------------------------


def test_a_fresh_database_is_migrated_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert current_revision(url) is None
    with Store(url):
        pass
    assert current_revision(url) == head_revision()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            cfg = alembic_config(conn)
            cfg.stdout = out = io.StringIO()
            command.current(cfg)  # what `alembic current` prints
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
    assert out.getvalue().split() == [head_revision(), "(head)"]


def test_opening_twice_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    with Store(url) as first:
        first.ensure_factory("kept", {"a": 1})
    with Store(url) as second:
        assert second.get_factory("kept").spec == {"a": 1}
        assert second.verify_chain().ok
    assert upgrade(url) == head_revision()
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
    finally:
        engine.dispose()


def test_upgrade_creates_and_migrates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'u.db'}"
    assert upgrade(url) == head_revision()
    assert current_revision(url) == head_revision()


def test_fresh_database_opened_by_several_threads_at_once(tmp_path: Path) -> None:
    # the race (a new file switched to WAL while another connection migrates it) failed about 1 round in 8
    for round_ in range(12):
        url = f"sqlite:///{tmp_path / f'race{round_}.db'}"
        errors: list[BaseException] = []

        def open_it(url: str = url, errors: list[BaseException] = errors) -> None:
            try:
                Store(url).close()
            except BaseException as err:  # pragma: no cover - reported below
                errors.append(err)

        threads = [threading.Thread(target=open_it) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [], f"round {round_}"
        assert current_revision(url) == head_revision()


def test_a_store_from_a_newer_darkfab_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    Store(url).close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = 'ffff_future'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match=r"newer\.db.*'ffff_future'.*upgrade darkfab"):
        Store(url)


# -- errors that name the URL ----------------------------------------------------------------------


def test_unsupported_backend(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"mysql://u@h/db.*'mysql'.*fix"):
        Store("mysql://u@h/db")
    with pytest.raises(StoreError, match=r"not a store URL"):
        Store("::://")


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"cannot open the store at sqlite:///.*junk\.db.*fix"):
        Store(str(junk))


def test_a_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the folder .*file.*fix"):
        Store(str(blocker / "sub" / "d.db"))


def test_an_unreachable_server_is_named_without_its_password() -> None:
    with pytest.raises(StoreError) as info:
        Store("postgresql+psycopg://user:s3cret@127.0.0.1:1/nowhere?connect_timeout=2")
    message = str(info.value)
    assert "127.0.0.1:1/nowhere" in message and "s3cret" not in message and "fix:" in message


# -- in-memory SQLite ------------------------------------------------------------------------------


def test_an_in_memory_store_works_in_one_process() -> None:
    with Store("sqlite://") as store:
        f = store.ensure_factory("mem", {})
        c = store.create_campaign(f.id, budget={}, trigger="t", seed=0, data_fingerprint="")
        tid = store.add_trial(c.id, proposer="p", trainer="t", params={}, reason="r").id
        store.start_trial(tid, worker="w")
        store.finish_trial(tid, state="completed", value=1.0)
        assert store.get_trial(tid).state == "completed" and store.verify_chain().ok


# -- PostgreSQL specifics --------------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_migrates_and_matches_the_metadata(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "arts"))
    with Store(pg_url) as store:
        assert store.artifact_root == (tmp_path / "arts").resolve()
    with Store(pg_url):
        pass
    assert current_revision(pg_url) == head_revision()
    engine = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
    finally:
        engine.dispose()
