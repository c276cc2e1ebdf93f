"""A SQLite connection for tests that read (or tamper with) a store file directly."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def sqlite_db(path: str | Path, **kwargs: Any) -> Iterator[sqlite3.Connection]:
    """A connection that commits what it wrote and is closed on leaving (sqlite3's own ``with`` commits but
    leaves the connection open, which Python 3.13 reports as a ResourceWarning)."""
    con = sqlite3.connect(path, **kwargs)
    try:
        with con:
            yield con
    finally:
        con.close()
