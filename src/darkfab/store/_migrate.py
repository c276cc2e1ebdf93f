"""Alembic migrations, run from code: on every :class:`Store` open, and by ``upgrade(url)``.

The migration scripts live inside the package (``darkfab/store/migrations``), so an installed darkfab
can bring any older store to the current schema without an ``alembic.ini`` on disk.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from ..errors import StoreError
from ._engine import BEGIN_OPTION, MIGRATE_LOCK_KEY, make_engine, open_error, prepare_location
from ._url import resolve_store_url, shown_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts; ``connection`` is the one env.py migrates."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The revision this darkfab's schema is at."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise StoreError(f"no migrations found under {MIGRATIONS_DIR}; fix: reinstall darkfab")
    return head


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def migrate_engine(engine: Engine, url: str) -> str:
    """Bring the database behind ``engine`` to head in one locked transaction; returns the head.

    Two processes opening a fresh store at once are safe: SQLite's ``BEGIN IMMEDIATE`` and PostgreSQL's
    advisory lock let one migrate while the other waits, then finds the schema at head.
    """
    head = head_revision()
    with engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"}).connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
        current = _current(conn)
        if current == head:
            return head
        if current is not None and not _known(current):
            raise StoreError(
                f"the store at {shown_url(url)} is at schema revision {current!r}, which this darkfab does "
                f"not know (it knows up to {head!r}): a newer darkfab wrote it; fix: upgrade darkfab"
            )
        command.upgrade(alembic_config(conn), "head")
    return head


def upgrade(url: str | None = None) -> str:
    """Migrate the store at ``url`` (resolved as :class:`Store` resolves it) to the newest schema.

    Returns the revision it is at now. Safe to run on a store that is already current.
    """
    resolved = resolve_store_url(url)
    prepare_location(resolved)
    engine = make_engine(resolved)
    try:
        return migrate_engine(engine, resolved)
    except StoreError:
        raise
    except (sa.exc.SQLAlchemyError, OSError) as err:
        raise open_error(resolved, err) from None
    finally:
        engine.dispose()


def current_revision(url: str | None = None) -> str | None:
    """The schema revision the store at ``url`` is at now (None for an empty database)."""
    resolved = resolve_store_url(url)
    engine = make_engine(resolved)
    try:
        with engine.connect() as conn:
            return _current(conn)
    except (sa.exc.SQLAlchemyError, OSError) as err:
        raise open_error(resolved, err) from None
    finally:
        engine.dispose()
