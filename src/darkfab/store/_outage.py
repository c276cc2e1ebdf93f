"""Store outages: which database errors are worth waiting out, the backoff between tries, and the cut.

A store down, restarting or locked by another writer is waited out before a transaction starts
(``_Outages.waiting`` in ``_base``). A connection cut in the MIDDLE of a unit of work (the server restarted, the backend
terminated) rolls the unit back; :class:`TransactionCut` carries that to ``_Outages.rerun``, which runs the unit
again from the start. Both share one clock and one limit, so an outage is waited out for at most that long.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from ..errors import StoreUnavailable

FIRST_PAUSE_S = 0.25
MAX_PAUSE_S = 5.0
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


def transient(err: sa.exc.DBAPIError) -> str:
    """What is wrong, when ``err`` is an outage worth waiting out (down, restarting, locked); "" otherwise."""
    text = " ".join(str(err.orig if err.orig is not None else err).split())
    low = text.lower()
    return text[:200] if isinstance(err, sa.exc.OperationalError) and any(m in low for m in _TRANSIENT) else ""


def cut_short(err: BaseException) -> str:
    """What cut the connection, when ``err`` ended a transaction half-way by an outage (the connection lost or
    invalidated, the server going away, SQLite locked); "" for any other error, which no second try would mend."""
    if not isinstance(err, sa.exc.DBAPIError):
        return ""
    why = transient(err)
    if why or not err.connection_invalidated:
        return why
    return " ".join(str(err.orig if err.orig is not None else err).split())[:200] or type(err).__name__


class TransactionCut(StoreUnavailable):
    """The connection was cut in the middle of a unit of work, which was rolled back: nothing of it was kept, and
    the store runs it again from the start. Internal to the store: past the outage wait a caller gets a plain
    :class:`~darkfab.errors.StoreUnavailable` with the same message."""

    def __init__(self, message: str, *, what: str, why: str) -> None:
        super().__init__(message)
        self.what = what
        self.why = why


class Backoff:
    """Pauses that double from 0.25 s to 5 s, while the outage that began at ``since`` is shorter than ``limit_s``."""

    def __init__(self, limit_s: float, since: float | None = None) -> None:
        self.limit_s = limit_s
        self.since = time.monotonic() if since is None else since
        self.pause = FIRST_PAUSE_S
        self.tries = 0

    @property
    def waited(self) -> float:
        return time.monotonic() - self.since

    def can_wait(self) -> bool:
        """Whether one more pause still ends within the limit."""
        return self.waited + self.pause <= self.limit_s

    def sleep(self) -> None:
        time.sleep(self.pause)
        self.pause = min(2 * self.pause, MAX_PAUSE_S)
        self.tries += 1
