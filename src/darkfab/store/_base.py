"""The store's machinery: engine, transactions, the hash-chained event log and its verification."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from ..errors import DarkfabError, NotFoundError, StoreError
from ._codec import GENESIS, event_hash, normalize
from ._engine import BEGIN_OPTION, CHAIN_LOCK_KEY, make_engine, open_error, prepare_location
from ._migrate import migrate_engine
from ._records import ChainReport, EventRecord
from ._schema import UTC, events
from ._sql import CAMPAIGN_BY_ID, EVENT_SELECT, FACTORY_NAME, INSERT_EVENT, LAST_EVENT_HASH, event_record
from ._url import default_artifact_root, resolve_store_url, shown_url, sqlite_file

if TYPE_CHECKING:
    from typing import Unpack

_LOCK_SQL = sa.text("SELECT pg_advisory_xact_lock(:key)")
logger = logging.getLogger("darkfab.store")

OUTAGE_WAIT_S = 300.0
"""How long a store that cannot be reached, or stays locked by another writer, is waited for before giving up."""
_FIRST_PAUSE_S = 0.25
_MAX_PAUSE_S = 5.0
# what a database says when it is down, restarting or locked by another writer: worth waiting out
_TRANSIENT = (
    "database is locked",
    "database is busy",
    "connection refused",
    "could not connect",
    "server closed the connection",
    "terminating connection",
    "connection timeout",
    "timeout expired",
    "the database system is starting up",
    "the database system is shutting down",
    "connection reset",
    "no route to host",
)


def _transient(err: sa.exc.DBAPIError) -> str:
    """What is wrong, when ``err`` is an outage worth waiting out (down, restarting, locked); "" otherwise."""
    text = " ".join(str(err.orig if err.orig is not None else err).split())
    low = text.lower()
    return text[:200] if isinstance(err, sa.exc.OperationalError) and any(m in low for m in _TRANSIENT) else ""


_VERIFY_BATCH = 2000


def utc_now() -> datetime:
    return datetime.now(UTC)


def inserted_id(result: CursorResult[Unpack[tuple[Any, ...]]]) -> int:
    """The primary key of the row a single-row INSERT just added."""
    key = result.inserted_primary_key
    assert key is not None, "a single-row INSERT always reports its primary key"
    return key[0]


def json_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise StoreError(f"{what} must be a dict, got {type(value).__name__} ({value!r:.60}); fix: pass a dict")
    try:
        return normalize(dict(value))
    except (TypeError, ValueError) as err:
        raise StoreError(f"{what}: {err}") from None


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{what} must be a non-empty string, got {value!r}")
    return value


def one_of(value: str, choices: Sequence[str], what: str) -> str:
    """``value`` if it is one of ``choices``; StoreError naming the value and the choices otherwise."""
    if value not in choices:
        raise StoreError(f"{what} {value!r} is not one of {list(choices)}; fix: use one of those")
    return value


def version_ref(ref: int | str) -> int | str:
    if isinstance(ref, bool) or not isinstance(ref, (int, str)):
        raise StoreError(f"a model version reference is a version number or an alias name, got {ref!r}")
    if isinstance(ref, str) and ref.strip().isdigit():
        return int(ref)
    return ref


_S = TypeVar("_S", bound="StoreBase")


class StoreBase:
    """The engine, its transactions and the event log; :class:`Store` adds the records on top."""

    def __init__(self, url: str | None = None) -> None:
        self.url: str = resolve_store_url(url)
        self._shown = shown_url(self.url)
        prepare_location(self.url)
        self._engine = make_engine(self.url)
        self._sqlite = self._engine.dialect.name == "sqlite"
        self._writer = self._engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
        # an in-memory SQLite database is one shared connection: its users must take turns
        self._lock: AbstractContextManager[Any] = (
            threading.RLock() if self._sqlite and sqlite_file(self.url) is None else nullcontext()
        )
        try:
            with self._lock:
                migrate_engine(self._engine, self.url)
        except StoreError:
            self._engine.dispose()
            raise
        except (sa.exc.SQLAlchemyError, OSError) as err:
            self._engine.dispose()
            raise open_error(self.url, err) from None
        self.artifact_root: Path = default_artifact_root(self.url)

    def __repr__(self) -> str:
        return f"Store({self._shown!r})"

    def close(self) -> None:
        """Close every pooled connection. Safe to call twice."""
        self._engine.dispose()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------------

    @contextmanager
    def _write(self, what: str, *, chain: bool = True) -> Iterator[Connection]:
        """One write transaction; ``chain`` writes will append an event, so they take the chain lock."""
        with self._lock:
            try:
                conn = self._waiting(what, self._writer.connect, begin=True)
                transaction = conn.get_transaction()
                assert transaction is not None, "_waiting(begin=True) hands back a begun transaction"
                with conn, transaction:
                    if chain and not self._sqlite:
                        conn.execute(_LOCK_SQL, {"key": CHAIN_LOCK_KEY})
                    yield conn
            except DarkfabError:
                raise
            except sa.exc.StatementError as err:
                raise self._db_error(what, err) from err

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        with self._lock:
            try:
                with self._waiting(what, self._engine.connect, begin=False) as conn:
                    yield conn
            except DarkfabError:
                raise
            except sa.exc.StatementError as err:
                raise self._db_error(what, err) from err

    def _waiting(self, what: str, connect: Callable[[], Connection], *, begin: bool) -> Connection:
        """A connection (in a begun transaction when ``begin``), waiting out an outage with backoff.

        Only the start is retried, before anything is done, so nothing is lost or done twice: the store down or
        restarting (PostgreSQL) or locked by another writer (SQLite) is logged, waited for up to
        :data:`OUTAGE_WAIT_S` with pauses doubling to 5 s, and logged again when it is back.
        """
        t0 = time.monotonic()
        pause = _FIRST_PAUSE_S
        tries = 0
        while True:
            conn: Connection | None = None
            try:
                conn = connect()
                if begin:
                    conn.begin()
                break
            except sa.exc.DBAPIError as err:
                if conn is not None:
                    conn.close()
                why = _transient(err)
                waited = time.monotonic() - t0
                if not why or waited + pause > OUTAGE_WAIT_S:
                    raise
                tries += 1
                logger.warning(
                    "the store at %s cannot %s now (%s); waiting %.1fs and trying again (%.0fs waited so far, "
                    "up to %.0fs)",
                    self._shown,
                    what,
                    why,
                    pause,
                    waited,
                    OUTAGE_WAIT_S,
                )
                time.sleep(pause)
                pause = min(2 * pause, _MAX_PAUSE_S)
        if tries:
            logger.warning(
                "the store at %s is back after %.1fs; carrying on (%s)", self._shown, time.monotonic() - t0, what
            )
        return conn

    def _db_error(self, what: str, err: sa.exc.StatementError) -> StoreError:
        cause = err.orig if err.orig is not None else err
        text = " ".join(str(cause).split())
        if isinstance(cause, (TypeError, ValueError)):
            return StoreError(f"cannot {what}: {text}")
        return StoreError(
            f"cannot {what} in the store at {self._shown}: {text}; fix: check that the database is reachable "
            "and not locked by a stuck process, then retry"
        )

    def _event(
        self,
        conn: Connection,
        now: datetime,
        *,
        kind: str,
        reason: str,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        trial_id: int | None = None,
        data: dict[str, Any] | None = None,
        head: str | None | Literal[False] = False,
    ) -> EventRecord:
        """Append one event inside the caller's transaction.

        ``head`` is the chain head (``hash`` of the newest event, None for an empty log) when the caller
        already read it in this transaction, after taking the write lock; False to read it here.
        """
        data = normalize(data or {})
        prev = (conn.execute(LAST_EVENT_HASH).scalar() if head is False else head) or GENESIS
        fields: dict[str, Any] = {
            "created_at": now,
            "kind": kind,
            "reason": reason,
            "factory_id": factory_id,
            "campaign_id": campaign_id,
            "trial_id": trial_id,
            "data": data,
        }
        digest = event_hash(prev, **fields)
        row_id = inserted_id(conn.execute(INSERT_EVENT, {"prev_hash": prev, "hash": digest, **fields}))
        return EventRecord(id=row_id, prev_hash=prev, hash=digest, **fields)

    def _factory_name(self, conn: Connection, factory_id: int) -> str:
        name = conn.execute(FACTORY_NAME, {"b_factory_id": factory_id}).scalar()
        if name is None:
            raise NotFoundError(f"no factory with id {factory_id} in the store at {self._shown}")
        return name

    # -- campaigns ---------------------------------------------------------------------------------

    def _campaign_row(self, conn: Connection, campaign_id: int) -> sa.Row[Any]:
        row = conn.execute(CAMPAIGN_BY_ID, {"b_campaign_id": campaign_id}).first()
        if row is None:
            raise NotFoundError(f"no campaign with id {campaign_id} in the store at {self._shown}")
        return row

    # -- events ------------------------------------------------------------------------------------

    def append_event(
        self,
        *,
        kind: str,
        reason: str,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        trial_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Record a decision that no other method records (a gate verdict, a pause, a person's overrule)."""
        check_name(kind, "an event kind")
        payload = json_dict(data or {}, f"the data of event {kind!r}")
        with self._write(f"append event {kind!r}") as conn:
            return self._event(
                conn,
                utc_now(),
                kind=kind,
                reason=reason,
                factory_id=factory_id,
                campaign_id=campaign_id,
                trial_id=trial_id,
                data=payload,
            )

    def list_events(
        self,
        *,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        kinds: tuple[str, ...] | None = None,
        limit: int | None = None,
        after_id: int = 0,
    ) -> list[EventRecord]:
        """Events oldest first; with ``limit``, the newest ``limit`` of them (still oldest first); with
        ``after_id``, only those appended after that event."""
        query = EVENT_SELECT
        if after_id:
            query = query.where(events.c.id > after_id)
        if factory_id is not None:
            query = query.where(events.c.factory_id == factory_id)
        if campaign_id is not None:
            query = query.where(events.c.campaign_id == campaign_id)
        if kinds is not None:
            query = query.where(events.c.kind.in_(list(kinds)))
        newest_first = limit is not None
        query = query.order_by(events.c.id.desc() if newest_first else events.c.id).limit(limit)
        with self._read("list events") as conn:
            found = [event_record(r) for r in conn.execute(query)]
        if newest_first:
            found.reverse()
        return found

    def verify_chain(self) -> ChainReport:
        """Recompute every event's hash and link; report the first event that was altered or removed.

        An event whose content changed fails its own hash; an event removed from the middle breaks the
        link of the one after it. (Removing the newest events leaves a shorter valid chain: compare the
        head hash this reports with one kept elsewhere to catch that.)
        """
        checked = 0
        expected_prev, prev_id = GENESIS, None
        last_id = 0
        with self._read("verify the event chain") as conn:
            while True:
                batch = conn.execute(
                    EVENT_SELECT.where(events.c.id > last_id).order_by(events.c.id).limit(_VERIFY_BATCH)
                ).all()
                if not batch:
                    break
                for row in batch:
                    checked += 1
                    if row.prev_hash != expected_prev:
                        after = f"event {prev_id}" if prev_id is not None else "the start of the log"
                        return ChainReport(
                            ok=False,
                            checked=checked,
                            first_bad_id=row.id,
                            message=f"event {row.id} ({row.kind}) does not follow {after}: it links to "
                            f"{row.prev_hash[:12]}... but {after} ends in {expected_prev[:12]}...; "
                            "an event between them was removed or inserted",
                        )
                    digest = event_hash(
                        row.prev_hash,
                        created_at=row.created_at,
                        kind=row.kind,
                        reason=row.reason,
                        factory_id=row.factory_id,
                        campaign_id=row.campaign_id,
                        trial_id=row.trial_id,
                        data=row.data,
                    )
                    if digest != row.hash:
                        return ChainReport(
                            ok=False,
                            checked=checked,
                            first_bad_id=row.id,
                            message=f"event {row.id} ({row.kind}) does not match its hash: it was altered "
                            "after it was written",
                        )
                    expected_prev, prev_id = row.hash, row.id
                last_id = batch[-1].id
        head = "empty log" if prev_id is None else f"head event {prev_id}, hash {expected_prev}"
        return ChainReport(ok=True, checked=checked, first_bad_id=None, message=f"{checked} events verify ({head})")
