"""The console's levers: log in and out, roll a factory's champion back, approve or reject a pending gate
winner, pause and resume a factory. Every action needs a live session and its CSRF token, and is recorded
in the event log with the person and their reason."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..registry import PENDING
from ..runtime import alias_mirror
from ..store import Pauses
from ._app import Console
from ._auth import COOKIE, FormDep, check_action
from ._pages import ConsoleDep

router = APIRouter()

MAX_REASON = 500
MAX_PERSON = 80


def _mirrored(c: Console, name: str, why: str) -> None:
    """The factory's ``registry.mlflow`` follows the move (in the background; see :func:`alias_mirror`)."""
    hook = alias_mirror(c.store, name)
    if hook is not None:
        hook(why)


def _text(form: dict[str, str], field: str, what: str, limit: int) -> str:
    value = " ".join(form.get(field, "").split())
    if not value:
        raise HTTPException(400, f"{what} is required; fix: fill in the {field!r} field")
    if len(value) > limit:
        raise HTTPException(400, f"{what} is {len(value)} characters long; fix: keep it under {limit}")
    return value


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, c: ConsoleDep) -> HTMLResponse:
    return c.page(request, "login.html", failed=False)


@router.post("/login")
def login(request: Request, c: ConsoleDep, form: FormDep) -> Response:
    person = _text(form, "person", "your name", MAX_PERSON)
    sid = c.sessions.login(form.get("token", ""), person)
    if sid is None:
        return c.page(request, "login.html", status=403, failed=True)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/")
    return response


@router.post("/logout")
def logout(request: Request, c: ConsoleDep, form: FormDep) -> Response:
    check_action(c.sessions, request, form)
    c.sessions.logout(request.cookies.get(COOKIE, ""))
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/factories/{name}/rollback")
def rollback(request: Request, c: ConsoleDep, name: str, form: FormDep) -> Response:
    """Point ``champion`` back at an earlier version (through the registry; its event names who and why)."""
    session = check_action(c.sessions, request, form)
    reason = _text(form, "reason", "the reason", MAX_REASON)
    try:
        version = int(form.get("version", ""))
    except ValueError:
        raise HTTPException(400, f"version must be a version number, got {form.get('version', '')!r}") from None
    held = c.registry.aliases(name)
    known = [r.version for r in c.registry.versions(name)]
    if version not in known:
        raise HTTPException(400, f"factory {name!r} has no version {version}; fix: choose one of {known}")
    if held.get(PENDING) == version:
        raise HTTPException(400, f"version {version} of {name!r} waits for approval; fix: approve it, not roll back")
    if held.get("champion") == version:
        raise HTTPException(400, f"version {version} is already the champion of {name!r}; fix: choose another")
    why = f"rolled back by {session.person} in the console: {reason}"
    c.registry.set_alias(name, "champion", version, reason=why)
    _mirrored(c, name, why)
    return RedirectResponse(f"/factories/{quote(name)}/versions/{version}", status_code=303)


@router.post("/factories/{name}/versions/{version}/{verb}")
def decide(request: Request, c: ConsoleDep, name: str, version: int, verb: str, form: FormDep) -> Response:
    """Approve or reject the version waiting as ``pending`` (through the registry, as `darkfab approve` does)."""
    if verb not in ("approve", "reject"):
        raise HTTPException(404, f"no action {verb!r} on a version; the console can approve or reject one")
    session = check_action(c.sessions, request, form)
    reason = _text(form, "reason", "the reason", MAX_REASON)
    act = c.registry.approve if verb == "approve" else c.registry.reject
    act(name, version, person=session.person, reason=reason)
    _mirrored(c, name, f"version {version} {verb.rstrip('e')}ed by {session.person} in the console: {reason}")
    return RedirectResponse(f"/factories/{quote(name)}/versions/{version}", status_code=303)


@router.post("/factories/{name}/{verb}")
def pause(request: Request, c: ConsoleDep, name: str, verb: str, form: FormDep) -> Response:
    """Pause or resume a factory (its running campaign and workers start no new trial while it is paused)."""
    if verb not in ("pause", "resume"):
        raise HTTPException(404, f"no action {verb!r} on a factory; the console can pause, resume or roll back")
    session = check_action(c.sessions, request, form)
    reason = _text(form, "reason", "the reason", MAX_REASON)
    factory = c.store.get_factory(name)
    pauses = Pauses(c.store)
    act = pauses.pause if verb == "pause" else pauses.resume
    act(factory.id, person=session.person, reason=reason)
    return RedirectResponse(f"/#factory-{quote(name)}", status_code=303)
