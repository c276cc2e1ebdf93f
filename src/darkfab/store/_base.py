"""The store's machinery: engine, transactions, the clock and the appending of hash-chained events.

:class:`StoreBase` owns them; each concern's records live in a :class:`Repository` that holds a typed
reference to it (``_events``, ``_campaigns``, ``_trials`` ...), and :class:`~darkfab.store.Store` composes them.
"""

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

from ..errors import DarkfabError, NotFoundError, StoreError, StoreUnavailable
from ..redact import known_secrets, redact, redact_value
from ._audit import (
    SWITCH_KIND,
    HeadAnchor,
    audit_places,
    file_lock,
    key_missing,
    new_key,
    private_file,
    read_key,
    tighten,
)
from ._codec import GENESIS, keyed_event_hash, normalize
from ._engine import BEGIN_OPTION, CHAIN_LOCK_KEY, make_engine, open_error, prepare_location
from ._migrate import migrate_engine
from ._records import EventRecord
from ._schema import UTC, events
from ._sql import CAMPAIGN_BY_ID, FACTORY_NAME, INSERT_EVENT, LAST_EVENT, LAST_EVENT_HASH
from ._url import default_artifact_root, parse_url, resolve_store_url, shown_url, sqlite_file
from ._verify import event_is_genuine, is_legacy

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


_SECRETS_TTL_S = 1.0
_APPENDED = "darkfab_appended"  # conn.info key: (id, hash) of the newest event this transaction appended
_COUNT_AFTER = sa.select(sa.func.count(events.c.id)).where(events.c.id > sa.bindparam("b_after"))


def utc_now() -> datetime:
    """Now, timezone-aware UTC: the store's default clock."""
    return datetime.now(UTC)


Clock = Callable[[], datetime]
"""What a store asks for the time it stamps on records and events; it must answer an aware datetime."""


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
    """The engine, its transactions, the clock and the event chain's key and head; repositories add the records.

    ``clock`` gives every time the store stamps (records, events, lease expiries, the windows it reads
    workers in); a test passes its own to move time rather than sleep.
    """

    def __init__(self, url: str | None = None, *, clock: Clock = utc_now) -> None:
        self.clock: Clock = clock
        self.url: str = resolve_store_url(url)
        self._shown = shown_url(self.url)
        db_file = sqlite_file(self.url)
        created = db_file is not None and not db_file.exists()
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
        self._head: HeadAnchor | None = None
        self._key: bytes = b""
        self._key_error: StoreError | None = None
        self._secrets_cache: tuple[float, frozenset[str]] | None = None
        try:
            self._open_audit(created)
        except BaseException:
            self._engine.dispose()
            raise
        if db_file is not None:
            for path in (db_file, db_file.with_name(db_file.name + "-wal"), db_file.with_name(db_file.name + "-shm")):
                tighten(path, 0o600)

    # -- the audit key and head (outside the store) --------------------------------------------------

    def _open_audit(self, created: bool) -> None:
        places = audit_places(self.url)
        key = read_key(places)
        if key is None and places.key_file is None:
            key = new_key()  # an in-memory store: its log lives as long as this process, and so does its key
        elif key is None:
            assert places.key_file is not None
            with file_lock(places.key_file):
                key = read_key(places)
                if key is None:
                    with self._read("read the newest event") as conn:
                        last = conn.execute(LAST_EVENT).first()
                    if last is not None and not is_legacy(last):
                        # readable still (status, trials), but nothing is appended, verified or served from it
                        self._key_error = key_missing(places, self.url)
                        return
                    key = new_key()
                    try:
                        private_file(places.key_file, key + b"\n")
                    except OSError as err:
                        raise StoreError(
                            f"cannot create the audit key {places.key_file} of the store at {self._shown}: "
                            f"{err.strerror or err}; fix: make that folder writable, or set $DARKFAB_AUDIT_KEY"
                        ) from None
        if places.key_file is not None:
            tighten(places.key_file, 0o600)
        self._key = key
        self._head = (
            HeadAnchor(places.head_file, key, clock=lambda: self.clock()) if places.head_file is not None else None
        )
        if self._head is not None and created:
            self._head.forget()
        self._check_chain_head()

    def _check_chain_head(self) -> None:
        """Whether the newest event was written with this key; the store appends nothing when it was not."""
        with self._read("read the newest event") as conn:
            last = conn.execute(LAST_EVENT).first()
        if last is None or event_is_genuine(last, self._key):
            return
        if is_legacy(last):
            # an old store, or a keyed log re-chained by hand without the key: only its operator can tell which
            self._key_error = StoreError(
                f"the event log of the store at {self._shown} ends with an event ({last.id}, {last.kind}) under the "
                "unkeyed rule of darkfab before the keyed audit chain; nothing is appended, verified or served "
                "until it is keyed; fix: if this store was written by an older darkfab, run `darkfab db upgrade` "
                "once (it keys the chain from a `chain_keyed` event on); if it was not, its log was rewritten: "
                "restore it from a backup"
            )
            return
        # appending under a wrong key would bury the log's last genuine event under events nobody can check
        self._key_error = StoreError(
            f"the audit key does not match the newest event ({last.id}, {last.kind}) of the store at "
            f"{self._shown}: this is not the key the log was written with, or that event was altered; nothing "
            "is appended, verified or served until it is resolved; fix: give the right key ($DARKFAB_AUDIT_KEY, "
            "$DARKFAB_AUDIT_KEY_FILE or the audit.key file), then run `darkfab audit verify`"
        )

    def key_legacy_chain(self) -> bool:
        """Key the log of a store written by an older darkfab: event ``chain_keyed`` is the first under the keyed
        rule, the events before it keep the unkeyed rule. True when it did; False when the log was keyed already.

        Never automatic: a keyed log re-chained by hand under the unkeyed rule looks exactly like an old one, and
        only the operator knows which it is (``darkfab db upgrade`` calls this).
        """
        with self._write("key the audit chain") as conn:
            last = conn.execute(LAST_EVENT).first()
            if last is None or not is_legacy(last) or event_is_genuine(last, self._key):
                return False
            count = conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
            error, self._key_error = self._key_error, None
            try:
                self._event(
                    conn,
                    self.clock(),
                    kind=SWITCH_KIND,
                    reason=f"the audit chain is keyed (HMAC-SHA256) from this event on; the {count} events before "
                    "it keep the unkeyed SHA-256 rule they were written with",
                    data={"legacy_events": count, "legacy_head": last.hash},
                    head=last.hash,
                )
            except BaseException:
                self._key_error = error
                raise
        return True

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
                head: tuple[int, int, str] | None = None
                with conn:
                    conn.info.pop(_APPENDED, None)
                    try:
                        with transaction:
                            if chain and not self._sqlite:
                                conn.execute(_LOCK_SQL, {"key": CHAIN_LOCK_KEY})
                            yield conn
                            appended = conn.info.pop(_APPENDED, None)
                            if appended is not None and self._head is not None:
                                # counted under the write lock, written once the change is committed
                                count = self._head.count_after(lambda after, _: self._count_events(conn, after))
                                head = (count, *appended)
                    finally:
                        conn.info.pop(_APPENDED, None)
                if head is not None and self._head is not None:
                    self._head.advance(*head)
            except DarkfabError:
                raise
            except sa.exc.StatementError as err:
                raise self._db_error(what, err) from err

    @staticmethod
    def _count_events(conn: Connection, after_id: int) -> int:
        return int(conn.execute(_COUNT_AFTER, {"b_after": after_id}).scalar_one())

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
        # an outage waited out in vain, or a connection cut mid-transaction (rolled back): the work may be retried
        outage = isinstance(err, sa.exc.DBAPIError) and (bool(_transient(err)) or err.connection_invalidated)
        return (StoreUnavailable if outage else StoreError)(
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
        data: dict[str, Any] | None = None,
        head: str | None | Literal[False] = False,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        trial_id: int | None = None,
    ) -> EventRecord:
        """Append one event inside the caller's transaction.

        ``head`` is the chain head (``hash`` of the newest event, None for an empty log) when the caller
        already read it in this transaction, after taking the write lock; False to read it here.
        """
        kind = str(kind)  # an EventKind is stored, hashed and handed back as its plain text
        secrets = self._secrets()
        data = redact_value(normalize(data or {}), secrets)
        reason = redact(reason, secrets)
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
        if self._key_error is not None:
            raise self._key_error
        digest = keyed_event_hash(self._key, prev, **fields)
        row_id = inserted_id(conn.execute(INSERT_EVENT, {"prev_hash": prev, "hash": digest, **fields}))
        conn.info[_APPENDED] = (row_id, digest)
        return EventRecord(id=row_id, prev_hash=prev, hash=digest, **fields)

    def _secrets(self) -> frozenset[str]:
        """What :mod:`darkfab.redact` masks in this store's texts: the environment's secrets, the store URL's
        password and the audit key. Read again at most once a second: scanning the environment at every write
        cost as much as the write itself."""
        now = time.monotonic()
        if self._secrets_cache is None or now - self._secrets_cache[0] > _SECRETS_TTL_S:
            password = parse_url(self.url).password
            found = known_secrets(extra=[str(password or ""), self._key.decode("utf-8", "replace").strip()])
            self._secrets_cache = (now, found)
        return self._secrets_cache[1]

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


class Repository:
    """One concern's records over the store's engine: a typed handle on its transactions, clock and event log.

    A repository never opens its own connections; it writes through ``self._base._write`` (one transaction,
    with the chain lock when it appends an event) and appends events through ``self._base._event``.
    """

    def __init__(self, base: StoreBase) -> None:
        self._base = base
