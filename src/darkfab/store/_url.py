"""Where the store lives: resolving its URL and the folder that holds artifacts."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from ..errors import StoreError

ENV_STORE = "DARKFAB_STORE"
ENV_ARTIFACTS = "DARKFAB_ARTIFACTS"
DEFAULT_DIR = ".darkfab"
DEFAULT_DB = "darkfab.db"

_MEMORY = (None, "", ":memory:")


def resolve_store_url(url: str | None = None) -> str:
    """The store URL to use: ``url`` if given, else ``$DARKFAB_STORE``, else ``<cwd>/.darkfab/darkfab.db``.

    A bare filesystem path becomes a SQLite URL; a relative SQLite path becomes absolute (against the
    current directory), so the store and its artifacts stay put when the process changes directory.
    ``postgresql://`` and ``postgres://`` are read as ``postgresql+psycopg://`` (psycopg 3).
    """
    raw = url if url is not None else os.environ.get(ENV_STORE) or None
    if raw is None:
        return f"sqlite:///{(Path.cwd() / DEFAULT_DIR / DEFAULT_DB).resolve()}"
    raw = raw.strip()
    if not raw:
        raise StoreError(
            "the store URL is empty; fix: pass a URL such as sqlite:///path/to/darkfab.db or "
            "postgresql+psycopg://user@host/db, or unset DARKFAB_STORE to use ./.darkfab/darkfab.db"
        )
    if "://" not in raw:
        return f"sqlite:///{Path(raw).expanduser().resolve()}"
    parsed = parse_url(raw)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.get_backend_name() == "sqlite" and parsed.database not in _MEMORY:
        database = parsed.database or ""
        if not database.startswith("file:"):  # a sqlite URI (file:...?uri=true) is left as written
            parsed = parsed.set(database=str(Path(database).expanduser().resolve()))
    return parsed.render_as_string(hide_password=False)


def parse_url(url: str) -> URL:
    try:
        return sa.make_url(url)
    except Exception as err:  # ArgumentError, ValueError: the text is not a URL at all
        raise StoreError(
            f"{url!r} is not a store URL ({err}); fix: use sqlite:///path/to/darkfab.db, a file path, "
            "or postgresql+psycopg://user@host:5432/db"
        ) from None


def shown_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def is_sqlite(url: str) -> bool:
    return parse_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in _MEMORY:
        return None
    database = parsed.database or ""
    if database.startswith("file:"):
        name = database[len("file:") :].split("?", 1)[0]
        if not name or name == ":memory:" or parsed.query.get("mode") == "memory":
            return None
        return Path(name).resolve()
    return Path(database)


def default_artifact_root(url: str) -> Path:
    """Next to the database for SQLite; else ``$DARKFAB_ARTIFACTS`` or ``<cwd>/.darkfab/artifacts``."""
    db_file = sqlite_file(url)
    if db_file is not None:
        return db_file.parent / "artifacts"
    env = os.environ.get(ENV_ARTIFACTS)
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / DEFAULT_DIR / "artifacts").resolve()
