"""Fixtures of the monitor tests: a real store on SQLite, and real webhook servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.store import Store

from ..helpers.webhook import Hook, webhook_server


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "monitor.db")) as st:
        yield st


@pytest.fixture
def webhook(request: pytest.FixtureRequest) -> Iterator[Hook]:
    """A real webhook on loopback (:func:`webhook_server`); parametrize it indirectly with ``fail`` or ``hang``."""
    with webhook_server(getattr(request, "param", "ok")) as hook:
        yield hook
