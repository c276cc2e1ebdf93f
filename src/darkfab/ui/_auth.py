"""The console's one admin: a token login, server-side sessions, and the CSRF check every action passes.

Reading needs no login (the console listens on loopback by default); acting does. A session is a random
id in an HttpOnly, SameSite=Strict cookie; each session holds its own CSRF token, which every form posts
back. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request

COOKIE = "darkfab_console"
MAX_SESSIONS = 1000  # the oldest is forgotten beyond this
MAX_FORM_BYTES = 64 * 1024


@dataclass(frozen=True)
class Session:
    """A logged-in person: the name they gave (recorded with every action) and their CSRF token."""

    person: str
    csrf: str


class Sessions:
    """The admin token and the live sessions of one console process (forgotten when it stops)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def login(self, token: str, person: str) -> str | None:
        """A new session id when ``token`` is the admin token, else None."""
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        sid = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._sessions.pop(next(iter(self._sessions)))
            self._sessions[sid] = Session(person=person, csrf=secrets.token_urlsafe(32))
        return sid

    def logout(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    def get(self, request: Request) -> Session | None:
        """The session of the request's cookie, if it is a live one."""
        sid = request.cookies.get(COOKIE)
        if not sid:
            return None
        with self._lock:
            return self._sessions.get(sid)


async def read_form(request: Request) -> dict[str, str]:
    """A url-encoded form body as a dict (first value of each field); refuses other bodies and huge ones."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the form as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"the form is larger than {MAX_FORM_BYTES} bytes")
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


FormDep = Annotated[dict[str, str], Depends(read_form)]
"""A handler's form, read on the event loop: the handler itself is a plain ``def``, so FastAPI runs it off the loop
and its store reads and writes (which wait out an outage) never hold up other requests."""


def check_action(sessions: Sessions, request: Request, form: dict[str, str]) -> Session:
    """The session allowed to act, or 403: no live session, or a CSRF token that does not match it."""
    session = sessions.get(request)
    if session is None:
        raise HTTPException(403, "log in with the admin token first")
    sent = form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page and try again")
    return session
