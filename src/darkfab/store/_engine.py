"""Engines per backend: SQLite tuned for one writer at a time, PostgreSQL through psycopg 3.

SQLite: WAL (readers never wait for the writer), synchronous=NORMAL (a commit is durable at the next
checkpoint, and the database is never corrupted by a crash), foreign keys on, a busy timeout, and
``BEGIN IMMEDIATE`` for write transactions so that two writers can never read the same chain head.
PostgreSQL: writes that touch the event chain take a transaction-scoped advisory lock first.
"""

from __future__ import annotations

import os
import sqlite3
import time
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from ..errors import StoreError
from ._codec import dumps
from ._url import parse_url, shown_url, sqlite_file

BUSY_TIMEOUT_S = 30.0
BEGIN_WAIT_S = 2.0
"""How long ``BEGIN IMMEDIATE`` waits for another writer's lock before the store says so and backs off."""
BEGIN_OPTION = "darkfab_begin"  # execution option: "IMMEDIATE" for write transactions on SQLite
CHAIN_LOCK_KEY = 0x6461726B666162  # "darkfab" in ASCII: the advisory lock that serialises chain appends
MIGRATE_LOCK_KEY = CHAIN_LOCK_KEY + 1

SUPPORTED = ("sqlite", "postgresql")

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_connections_in_child() -> None:
    # a forked child must not use (or close politely) the connections of its parent: give it fresh pools
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_connections_in_child)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # take BEGIN away from the sqlite3 module: _sqlite_begin emits it, DEFERRED or IMMEDIATE
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch a new database to WAL. SQLite answers "database is locked" at once, without waiting out the busy
    timeout, when another connection is migrating the same fresh file: wait and try again, as the timeout would."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    delay = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.1)


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
    if mode != "IMMEDIATE":
        conn.exec_driver_sql(f"BEGIN {mode}")
        return
    # a write waits briefly here, then the Store reports the lock and backs off (nothing has been done yet)
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(BEGIN_WAIT_S * 1000)}")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; raises StoreError naming the URL when the backend is not supported."""
    parsed = parse_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise StoreError(
            f"the store URL {shown_url(url)} uses the {backend!r} backend; darkfab supports {list(SUPPORTED)}; "
            "fix: use sqlite:///path/to/darkfab.db or postgresql+psycopg://user@host:5432/db"
        )
    try:
        if backend == "sqlite":
            kwargs: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S, "check_same_thread": False}}
            if sqlite_file(url) is None:
                kwargs["poolclass"] = StaticPool  # one shared in-memory database; the Store serialises access
            engine = sa.create_engine(parsed, json_serializer=dumps, **kwargs)
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            # pre-ping: a connection the server dropped (a restart) is replaced at checkout, where a failure can
            # still be waited out, rather than failing in the middle of a transaction
            engine = sa.create_engine(parsed, json_serializer=dumps, pool_size=5, max_overflow=10, pool_pre_ping=True)
    except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as err:
        raise StoreError(
            f"cannot open the store URL {shown_url(url)}: {err}; fix: for PostgreSQL use the psycopg 3 "
            "driver (postgresql+psycopg://..., pip install 'darkfab[postgres]'), for SQLite sqlite:///path"
        ) from None
    _ENGINES.add(engine)
    return engine


def prepare_location(url: str) -> None:
    """Create the folder (0700) and the file (0600) of a new SQLite database; StoreError naming the folder when
    that is not possible. An existing folder keeps its mode (it may be the user's own, e.g. the home folder)."""
    db_file = sqlite_file(url)
    if db_file is None:
        return
    try:
        if not db_file.parent.exists():
            # the store holds features, prompts and error tails: its own folder is its owner's only
            db_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not db_file.exists():
            # SQLite gives the -wal and -shm files the mode of the database file
            os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT, 0o600))
    except OSError as err:
        raise StoreError(
            f"cannot create the folder {db_file.parent} for the store {shown_url(url)}: {err.strerror or err}; "
            "fix: choose a writable location with --store or DARKFAB_STORE"
        ) from None


def open_error(url: str, err: BaseException) -> StoreError:
    """The StoreError for a store that cannot be opened or migrated: names the URL, the cause, the fix."""
    cause = getattr(err, "orig", None) or err
    text = " ".join(str(cause).split()) or type(cause).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    if sqlite_file(url) is not None or parse_url(url).get_backend_name() == "sqlite":
        fix = (
            "check that the path is a darkfab SQLite database (or does not exist yet) in a writable folder; "
            "point --store or DARKFAB_STORE elsewhere otherwise"
        )
    else:
        fix = (
            "check that the server is running and reachable at that host and port, that the database exists "
            "(createdb NAME) and that the user may connect to it"
        )
    return StoreError(f"cannot open the store at {shown_url(url)}: {text}; fix: {fix}")
