"""The store's machinery: engine, transactions, the clock and the appending of hash-chained events.

:class:`StoreBase` owns them; each concern's records live in a :class:`Repository` that holds a typed
reference to it (``_events``, ``_campaigns``, ``_trials`` ...), and :class:`~darkfab.store.Store` composes them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

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
from ._outage import Backoff, TransactionCut, cut_short, transient
from ._records import EventRecord
from ._schema import UTC, events
from ._sql import CAMPAIGN_BY_ID, FACTORY_NAME, INSERT_EVENT, LAST_EVENT, LAST_EVENT_HASH
from ._url import default_artifact_root, parse_url, resolve_store_url, shown_url, sqlite_file
from ._verify import event_is_genuine, is_legacy

if TYPE_CHECKING:
    from typing import Unpack

logger = logging.getLogger("darkfab.store")

OUTAGE_WAIT_S = 300.0
"""How long a store that cannot be reached, stays locked by another writer, or keeps cutting the connection in the
middle of a unit of work, is waited for before giving up."""
REQUEST_WAIT_S = 10.0
"""How long a server (the console, the model server's admin and routing reads) waits out a store outage for a
request before it answers 503: a campaign's 300 s would leave a person or a client looking at a request that never
ends (``Store(outage_wait_s=REQUEST_WAIT_S)``)."""
RETRY_AFTER_S = 15
"""The Retry-After, in seconds, of the 503 a server answers when the store is out."""
_XID_SQL = sa.text("SELECT txid_current()")
_LOCK_SQL = sa.text("SELECT txid_current(), pg_advisory_xact_lock(:key)")
_XID_STATUS = sa.text("SELECT txid_status(:xid)")
_Head = tuple[int, int, str]  # what the head anchor advances to once a transaction that appended is committed
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
_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Outages:
    """How one store waits out outages: before a transaction starts (:meth:`waiting`), and a unit of work whose
    connection was cut in its middle, run again from the start (:meth:`rerun`); both on one clock per thread."""

    def __init__(self, shown: str, wait_s: float | None = None) -> None:
        self._shown = shown
        self._wait_s = wait_s  # None: OUTAGE_WAIT_S, read when waiting
        self._local = threading.local()  # .since: when the outage a unit of work run again in this thread began

    def rerun(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)`` as one unit of work: when a connection is cut in its middle (its transaction rolled
        back, nothing of it kept) it is run again from the start, with backoff, for up to :data:`OUTAGE_WAIT_S`;
        then the cut is raised as StoreUnavailable. ``fn`` must be safe to run again after a rollback."""
        outer = self.since()  # set when this unit runs inside another that is being run again
        backoff: Backoff | None = None
        try:
            while True:
                try:
                    result = fn(*args, **kwargs)
                except TransactionCut as cut:
                    if backoff is None:
                        backoff = Backoff(self.wait_s, outer)
                        self._local.since = backoff.since  # the waits inside the next tries share this clock
                    if not backoff.can_wait():
                        raise StoreUnavailable(str(cut)) from None
                    logger.warning(
                        "the connection to the store at %s was cut in the middle of its work (%s: %s); nothing of it "
                        "was kept; doing it again from the start in %.1fs (%.0fs waited so far, up to %.0fs)",
                        self._shown,
                        cut.what,
                        cut.why,
                        backoff.pause,
                        backoff.waited,
                        self.wait_s,
                    )
                    backoff.sleep()
                    continue
                if backoff is not None:
                    logger.warning(
                        "the store at %s is back after %.1fs; carrying on (%s, run again whole)",
                        self._shown,
                        backoff.waited,
                        getattr(fn, "__name__", "the work"),
                    )
                return result
        finally:
            if backoff is not None:
                self._local.since = outer

    def unit(self, fn: Callable[_P, _T]) -> Callable[_P, _T]:
        """``fn`` that runs as one unit of work (:meth:`rerun`)."""

        @functools.wraps(fn)
        def unit(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            return self.rerun(fn, *args, **kwargs)

        return unit

    @property
    def wait_s(self) -> float:
        """How long an outage is waited out: the store's own patience, else :data:`OUTAGE_WAIT_S`."""
        return OUTAGE_WAIT_S if self._wait_s is None else self._wait_s

    def since(self) -> float | None:
        """When the outage this thread is waiting out began: the first cut of the unit of work being run again."""
        since: float | None = getattr(self._local, "since", None)
        return since

    def waiting(self, what: str, connect: Callable[[], Connection], *, begin: bool) -> Connection:
        """A connection (in a begun transaction when ``begin``), waiting out an outage with backoff.

        Only the start is retried here, before anything is done: the store down or restarting (PostgreSQL) or
        locked by another writer (SQLite) is logged, waited for up to :data:`OUTAGE_WAIT_S` (counted from the
        first cut when a unit of work is being run again) with pauses doubling to 5 s, and logged when it is back.
        """
        backoff = Backoff(self.wait_s, self.since())
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
                why = transient(err)
                if not why or not backoff.can_wait():
                    raise
                logger.warning(
                    "the store at %s cannot %s now (%s); waiting %.1fs and trying again (%.0fs waited so far, "
                    "up to %.0fs)",
                    self._shown,
                    what,
                    why,
                    backoff.pause,
                    backoff.waited,
                    self.wait_s,
                )
                backoff.sleep()
        if backoff.tries:
            logger.warning("the store at %s is back after %.1fs; carrying on (%s)", self._shown, backoff.waited, what)
        return conn


class StoreBase:
    """The engine, its transactions, the clock and the event chain's key and head; repositories add the records.

    ``clock`` gives every time the store stamps (records, events, lease expiries, the windows it reads
    workers in); a test passes its own to move time rather than sleep.
    """

    def __init__(self, url: str | None = None, *, clock: Clock = utc_now, outage_wait_s: float | None = None) -> None:
        self.clock: Clock = clock
        self.url: str = resolve_store_url(url)
        self._shown = shown_url(self.url)
        self._outages = _Outages(self._shown, outage_wait_s)
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
        return self._outages.rerun(self._key_legacy_chain)

    def _key_legacy_chain(self) -> bool:
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
        """One write transaction; ``chain`` writes will append an event, so they take the chain lock.

        A connection cut in its middle rolls it back and raises :class:`TransactionCut`, for the unit of work
        around it (``_Outages.rerun``) to run again; a COMMIT cut before its answer came is looked up first.
        """
        with self._lock:
            with self._errors(what, cut=False):
                conn = self._outages.waiting(what, self._writer.connect, begin=True)
            head: _Head | None = None
            with conn:
                conn.info.pop(_APPENDED, None)
                try:
                    with self._errors(what, cut=True):
                        head = yield from self._transaction(what, conn, chain=chain)
                finally:
                    conn.info.pop(_APPENDED, None)
            if head is not None and self._head is not None:
                self._head.advance(*head)

    def _transaction(self, what: str, conn: Connection, *, chain: bool) -> Generator[Connection, None, _Head | None]:
        """The begun transaction of ``conn``: the caller's statements, then the commit. Returns the new head (a
        generator's return value, for ``yield from``) when an event was appended."""
        transaction = conn.get_transaction()
        assert transaction is not None, "waiting(begin=True) hands back a begun transaction"
        try:
            xid = self._begin_work(conn, chain=chain)
            yield conn
            head: _Head | None = None
            appended = conn.info.pop(_APPENDED, None)
            if appended is not None and self._head is not None:
                # counted under the write lock, written once the change is committed
                head = (self._head.count_after(lambda after, _: self._count_events(conn, after)), *appended)
        except BaseException:
            if transaction.is_active:
                transaction.rollback()
            raise
        try:
            transaction.commit()
        except sa.exc.DBAPIError as err:
            transaction.rollback()  # a failed COMMIT leaves it inactive, not ended; on a lost connection, only ours
            if xid is None or not cut_short(err) or not self._kept(what, xid, cut_short(err)):
                raise
        return head

    def _begin_work(self, conn: Connection, *, chain: bool) -> int | None:
        """Take the chain lock (``chain``, PostgreSQL: SQLite's BEGIN IMMEDIATE took the database) and, on
        PostgreSQL, answer the transaction's id, to learn its fate should the answer to its COMMIT be lost."""
        if self._sqlite:
            return None
        if chain:
            return int(conn.execute(_LOCK_SQL, {"key": CHAIN_LOCK_KEY}).scalar_one())
        return int(conn.execute(_XID_SQL).scalar_one())

    def _kept(self, what: str, xid: int, why: str) -> bool:
        """Whether transaction ``xid``, whose COMMIT was cut before its answer came, was committed after all:
        PostgreSQL keeps each transaction's fate (``txid_status``), so a change is neither lost nor made twice."""
        backoff = Backoff(self._outages.wait_s, self._outages.since())
        while True:
            try:
                with self._read(f"learn whether the cut commit of {what} was kept") as conn:
                    status = conn.execute(_XID_STATUS, {"xid": xid}).scalar()
            except StoreUnavailable:
                status = None
            if status in ("committed", "aborted"):
                logger.warning(
                    "the connection to the store at %s was cut while committing (%s); the change %s",
                    self._shown,
                    what,
                    "was kept: carrying on" if status == "committed" else "was not kept",
                )
                return status == "committed"
            if not backoff.can_wait():
                raise StoreUnavailable(
                    f"cannot {what} in the store at {self._shown}: the connection was cut while committing ({why}) "
                    f"and whether the change was kept is not known after {backoff.waited:.0f}s; fix: check that the "
                    "database is reachable, then look at the records (darkfab status) before doing it again"
                )
            backoff.sleep()

    @staticmethod
    def _count_events(conn: Connection, after_id: int) -> int:
        return int(conn.execute(_COUNT_AFTER, {"b_after": after_id}).scalar_one())

    @contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        with self._lock:
            with self._errors(what, cut=False):
                conn = self._outages.waiting(what, self._engine.connect, begin=False)
            with conn, self._errors(what, cut=True):
                yield conn

    @contextmanager
    def _errors(self, what: str, *, cut: bool) -> Iterator[None]:
        """A database error as a StoreError naming ``what``; with ``cut``, a connection cut as :class:`TransactionCut`."""
        try:
            yield
        except DarkfabError:
            raise
        except sa.exc.StatementError as err:
            raise self._db_error(what, err, cut=cut) from err

    def _db_error(self, what: str, err: sa.exc.StatementError, *, cut: bool = False) -> StoreError:
        cause = err.orig if err.orig is not None else err
        text = " ".join(str(cause).split())
        if isinstance(cause, (TypeError, ValueError)):
            return StoreError(f"cannot {what}: {text}")
        message = (
            f"cannot {what} in the store at {self._shown}: {text}; fix: check that the database is reachable "
            "and not locked by a stuck process, then retry"
        )
        why = cut_short(err)
        if cut and why:
            # rolled back, nothing kept: the unit of work around it runs again (_Outages.rerun)
            return TransactionCut(message, what=what, why=why)
        # an outage waited out in vain, or a connection cut mid-transaction (rolled back): the work may be retried
        return (StoreUnavailable if why else StoreError)(message)

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
