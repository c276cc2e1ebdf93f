"""PostgreSQL fixtures for store tests.

Every test session gets its own database ``darkfab_test_<random>``, dropped at the end, so runs never
see each other; the tables are emptied before each test that uses it. ``pg_url`` (tests/conftest.py) gives
a brand-new empty database instead, for tests of migrations.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from darkfab.store import metadata, upgrade

from ..conftest import fresh_database


@pytest.fixture(scope="session")
def _pg_session_url(pg_admin: sa.Engine) -> Iterator[str]:
    for url in fresh_database(pg_admin):
        upgrade(url)
        yield url


@pytest.fixture
def pg_clean_url(_pg_session_url: str) -> str:
    """The session's database, migrated, with every table emptied and every id sequence restarted."""
    engine = sa.create_engine(_pg_session_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    return _pg_session_url
