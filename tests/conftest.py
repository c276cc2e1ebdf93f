"""Fixtures every test package may use: a PostgreSQL server's admin engine and brand-new databases.

Tests that use them are marked ``postgres``; they skip with the fix when the server is not reachable.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = os.environ.get("DARKFAB_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[sa.Engine]:
    """An autocommit engine on the server's ``postgres`` database, to create and drop test databases."""
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as err:
        engine.dispose()
        pytest.skip(
            f"PostgreSQL is not reachable at {sa.make_url(PG_ADMIN_URL).render_as_string()} ({err.orig}); "
            "start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, "
            "or deselect these tests with -m 'not postgres'"
        )
    yield engine
    engine.dispose()


def fresh_database(admin: sa.Engine) -> Iterator[str]:
    name = f"darkfab_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_admin: sa.Engine) -> Iterator[str]:
    """The URL of a brand-new, empty database; dropped after the test."""
    yield from fresh_database(pg_admin)
