"""What the routers depend on (FastAPI dependencies): the service, and the credentials of admin and feedback.

``create_app`` puts one :class:`ModelService` and one :class:`Credentials` in ``app.state``; a route asks for
them with ``Depends`` rather than closing over them, so each router can be mounted (and tested) on its own.
The dependencies are ``async`` so that FastAPI runs them on the event loop, never in a thread.

The Host and Origin checks are not dependencies: they are the ASGI middleware ``_guard.Guard``, which runs
before routing (a foreign Host is 421 on every path, a missing route included).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from ._errors import BadRequest, ModelNotFound, Unauthorized
from ._http import parse_json
from ._service import ModelService


@dataclass(frozen=True)
class Credentials:
    """The admin token (and where it is kept), and the feedback token when the server needs one."""

    admin_token: bytes
    token_file: Path
    feedback_token: bytes | None = None


def service_of(request: Request) -> ModelService:
    """The service behind the app. The prediction routes call it directly rather than through ``Depends``:
    solving a dependency costs a one-row prediction about 2% of its CPU."""
    svc: ModelService = request.app.state.service
    return svc


async def service(request: Request) -> ModelService:
    """The service behind the app (the dependency)."""
    return service_of(request)


async def credentials(request: Request) -> Credentials:
    """The app's credentials."""
    creds: Credentials = request.app.state.credentials
    return creds


Service = Annotated[ModelService, Depends(service)]


def _bearer(request: Request) -> str:
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    return credential if scheme.lower() == "bearer" else ""


async def feedback_allowed(request: Request, creds: Annotated[Credentials, Depends(credentials)]) -> None:
    """Unauthorized unless the server takes feedback without a credential or the request bears its token."""
    if creds.feedback_token is None:
        return
    if not secrets.compare_digest(_bearer(request).strip().encode(), creds.feedback_token):
        raise Unauthorized(
            "feedback: this server takes labels only with its feedback token; fix: send "
            "'Authorization: Bearer <token>' (the --feedback-token the server was started with)"
        )


async def admin_body(
    request: Request, svc: Service, creds: Annotated[Credentials, Depends(credentials)]
) -> dict[str, Any]:
    """The JSON object an admin request sends (``{}`` when none), once its bearer token is checked."""
    credential = _bearer(request)
    if not credential:
        raise Unauthorized(
            f"admin API: send the token as 'Authorization: Bearer <token>'; it is in {creds.token_file} on the server"
        )
    if not secrets.compare_digest(credential.strip().encode(), creds.admin_token):
        raise Unauthorized("admin API: the bearer token is wrong")
    raw = await request.body()
    body = parse_json(raw) if raw.strip() else {}
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object", "body")
    model = body.get("model", body.get("factory"))
    if model is not None and model != svc.factory:
        raise ModelNotFound(f"model {model!r} is not served here; served models: {svc.names}")
    return body


AdminBody = Annotated[dict[str, Any], Depends(admin_body)]
