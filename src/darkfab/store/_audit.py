"""The audit chain's secret and its anchor, both kept outside the store.

Every event's ``hash`` is HMAC-SHA256 with the store's audit key over the previous hash and the event's
fields, so someone who can write the database but not read the key cannot edit an event and re-chain the
rest. The key comes from, in order:

1. ``$DARKFAB_AUDIT_KEY`` (the key itself, at least 16 characters; for PostgreSQL stores shared by several
   machines, give every machine the same value),
2. the file ``$DARKFAB_AUDIT_KEY_FILE``,
3. ``audit.key`` beside a SQLite database file, or ``~/.darkfab/audit/<digest of the URL>.key`` for PostgreSQL.

A missing key file is created (64 random hex digits, mode 0600) while the log is empty, or while its newest
event still follows the legacy unkeyed rule (a store written by an older darkfab, which ``darkfab db upgrade``
keys from an event ``chain_keyed`` on). A missing key for a log that is already keyed is an error: the store
stays readable, but nothing is appended, verified or served without it.

The head (how many events, the newest id and hash, HMAC'd with the key) is written to a head file after each
committed append: ``audit.head`` beside a SQLite file, ``$DARKFAB_AUDIT_HEAD`` for any store (PostgreSQL has
no default: a per-machine file cannot follow what other machines append). A head behind the chain is
expected (a crash between the commit and the head write, another machine's appends); a chain behind its head
means events were removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import StoreError
from ..events import EventKind
from ._url import shown_url, sqlite_file

ENV_KEY = "DARKFAB_AUDIT_KEY"
ENV_KEY_FILE = "DARKFAB_AUDIT_KEY_FILE"
ENV_HEAD = "DARKFAB_AUDIT_HEAD"
KEY_FILE = "audit.key"
HEAD_FILE = "audit.head"
SWITCH_KIND = EventKind.CHAIN_KEYED  # the first event under the keyed rule in a store that had an unkeyed chain
_MIN_ENV_KEY = 16


@dataclass(frozen=True)
class AuditPlaces:
    """Where the key comes from and where the head is anchored; None where there is no such file."""

    key_file: Path | None
    head_file: Path | None
    env_key: bytes | None


def audit_places(url: str) -> AuditPlaces:
    """The key and head locations for the store at ``url`` (see the module docstring)."""
    raw = os.environ.get(ENV_KEY)
    env_key = None
    if raw is not None:
        if len(raw.strip()) < _MIN_ENV_KEY:
            raise StoreError(
                f"${ENV_KEY} holds {len(raw.strip())} characters; an audit key needs at least {_MIN_ENV_KEY}; "
                f"fix: set it to a long random value (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
                f" or unset it to use a key file"
            )
        env_key = raw.strip().encode("utf-8")
    db_file = sqlite_file(url)
    key_env_file = os.environ.get(ENV_KEY_FILE)
    head_env = os.environ.get(ENV_HEAD)
    if key_env_file:
        key_file: Path | None = Path(key_env_file).expanduser().resolve()
    elif db_file is not None:
        key_file = db_file.parent / KEY_FILE
    elif url.startswith("sqlite"):
        key_file = None  # an in-memory database: a key for this process only
    else:
        digest = hashlib.sha256(shown_url(url).encode("utf-8")).hexdigest()[:16]
        key_file = Path.home() / ".darkfab" / "audit" / f"{digest}.key"
    if head_env:
        head_file: Path | None = Path(head_env).expanduser().resolve()
    else:
        head_file = db_file.parent / HEAD_FILE if db_file is not None else None
    return AuditPlaces(key_file=key_file, head_file=head_file, env_key=env_key)


def private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between the processes of this machine, on ``<path>.lock``."""
    lock = path.with_name(path.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_key(places: AuditPlaces) -> bytes | None:
    if places.env_key is not None:
        return places.env_key
    if places.key_file is None:
        return None
    try:
        text = places.key_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StoreError(
            f"cannot read the audit key {places.key_file}: {err.strerror or err}; fix: make it readable by the "
            f"user darkfab runs as, or give the key in ${ENV_KEY}"
        ) from None
    if not text:
        return None
    return text.encode("utf-8")


def new_key() -> bytes:
    return secrets.token_hex(32).encode("ascii")


def key_missing(places: AuditPlaces, url: str) -> StoreError:
    where = f"the file {places.key_file}" if places.key_file is not None else f"${ENV_KEY}"
    return StoreError(
        f"the audit key of the store at {shown_url(url)} is missing: it was expected in {where} (or ${ENV_KEY}), "
        "and the store's event log is already keyed with it, so no event can be appended or verified; "
        f"fix: restore the key file from your backup, or set ${ENV_KEY} (or ${ENV_KEY_FILE}) to the key the log "
        "was written with"
    )


@dataclass(frozen=True)
class Head:
    """The anchored head: ``count`` events, the newest ``last_id`` with hash ``last_hash``."""

    count: int
    last_id: int
    last_hash: str
    updated_at: str
    valid: bool  # its MAC matches (False: the head file was edited, or was written with another key)


def _mac(key: bytes, count: int, last_id: int, last_hash: str) -> str:
    return hmac.new(key, f"darkfab-head:{count}:{last_id}:{last_hash}".encode(), hashlib.sha256).hexdigest()


_HEAD_BYTES = 512  # the head file is one fixed-size record, overwritten in place by a single write


class HeadAnchor:
    """The head file of one store: advanced after each committed append, read by the verification.

    The record is rewritten in place by one ``pwrite`` under an exclusive ``flock`` of the file itself (readers
    take a shared one): no rename, which on ext4 flushes the file's data at each replace and cost ~10 ms a
    change. A process that dies cannot leave half a record; after a power loss the head may be older than the
    last commits, or newer than a database that lost its last commits (see the README's security section).
    """

    def __init__(self, path: Path, key: bytes, *, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self._key = key
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    @contextlib.contextmanager
    def _locked(self, mode: int, *, create: bool) -> Iterator[int | None]:
        try:
            fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
        except FileNotFoundError:
            if create:
                raise
            yield None
            return
        try:
            fcntl.flock(fd, mode)
            yield fd
        finally:
            os.close(fd)

    def _parse(self, fd: int) -> Head | None:
        raw_bytes = os.pread(fd, _HEAD_BYTES * 2, 0)
        if not raw_bytes.strip():
            return None
        try:
            raw = json.loads(raw_bytes.decode("utf-8"))
            count, last_id, last_hash = int(raw["count"]), int(raw["last_id"]), str(raw["last_hash"])
            mac, updated = str(raw["mac"]), str(raw.get("updated_at", ""))
        except (ValueError, KeyError, TypeError):
            return Head(count=-1, last_id=-1, last_hash="", updated_at="", valid=False)
        valid = hmac.compare_digest(mac, _mac(self._key, count, last_id, last_hash))
        return Head(count=count, last_id=last_id, last_hash=last_hash, updated_at=updated, valid=valid)

    def read(self) -> Head | None:
        """The anchored head; None when there is none yet; ``valid`` False when it was edited."""
        try:
            with self._locked(fcntl.LOCK_SH, create=False) as fd:
                return None if fd is None else self._parse(fd)
        except OSError as err:
            raise StoreError(
                f"cannot read the audit head file {self.path}: {err.strerror or err}; fix: make it readable by "
                "the user darkfab runs as"
            ) from None

    def count_after(self, count_between: Callable[[int, int | None], int]) -> int:
        """How many events the chain holds now, from the anchored head and ``count_between(after_id, None)``
        (the events after ``after_id``): only the new events are counted when the head is sound."""
        current = self.read()
        if current is not None and current.valid:
            return current.count + count_between(current.last_id, None)
        return count_between(0, None)

    def advance(self, count: int, last_id: int, last_hash: str) -> None:
        """Record the head unless a newer one is already there (another process committed after this one)."""
        try:
            with self._locked(fcntl.LOCK_EX, create=True) as fd:
                assert fd is not None
                current = self._parse(fd)
                if current is not None and current.valid and current.last_id >= last_id:
                    return
                body = json.dumps(
                    {
                        "count": count,
                        "last_id": last_id,
                        "last_hash": last_hash,
                        "updated_at": self._clock().isoformat(),
                        "mac": _mac(self._key, count, last_id, last_hash),
                    }
                ).encode("utf-8")
                os.pwrite(fd, body.ljust(_HEAD_BYTES - 1) + b"\n", 0)
        except OSError as err:
            raise StoreError(
                f"the change was saved, but the audit head file {self.path} cannot be written: "
                f"{err.strerror or err}; fix: make its folder writable (or point ${ENV_HEAD} elsewhere)"
            ) from None

    def forget(self) -> None:
        """Remove the head of a store that was just created (a stale head of a deleted database)."""
        self.path.unlink(missing_ok=True)


def tighten(path: Path, mode: int) -> None:
    """Take group and other permissions away from a file or folder darkfab owns; silent where it cannot."""
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            path.chmod(mode)
