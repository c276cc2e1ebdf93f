"""The store contract over every backend: SQLite in a temporary folder, and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.store import Store
from darkfab.testing.store_contract import StoreContract


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'darkfab.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_clean_url")
    )
    with Store(url) as s:
        yield s


class TestStoreContract(StoreContract):
    pass
