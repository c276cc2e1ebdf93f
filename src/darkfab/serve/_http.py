"""HTTP plumbing every router shares: JSON bodies parsed strictly, error responses, the body size limit."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import DarkfabError, StoreUnavailable
from ..store import RETRY_AFTER_S
from ._errors import BadRequest, PayloadTooLarge, ServeError, Unauthorized

log = logging.getLogger("darkfab.serve")

DEFAULT_MAX_BODY = 1_000_000
DRAIN_BYTES = 16 * 1024 * 1024  # the most of an oversized body read (and dropped) before the 413 is sent


def error_response(err: ServeError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


async def serve_error_handler(_: Request, err: ServeError) -> JSONResponse:
    """A ServeError as its JSON response (401s name the Bearer scheme)."""
    headers = {"www-authenticate": "Bearer"} if isinstance(err, Unauthorized) else None
    return error_response(err, headers)


async def darkfab_error_handler(_: Request, err: DarkfabError) -> JSONResponse:
    """Any other darkfab error as a 500 naming it, logged; a store outage waited out in vain as a 503 with
    Retry-After (the request may be sent again once the store is back)."""
    log.error("request failed: %s", err)
    if isinstance(err, StoreUnavailable):
        return JSONResponse({"error": str(err)}, status_code=503, headers={"retry-after": str(RETRY_AFTER_S)})
    return JSONResponse({"error": str(err)}, status_code=500)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("body: empty; send a JSON document (Content-Type: application/json)", "body")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"body: not valid JSON ({err}); send a JSON document", "body") from None


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length or by the bytes that arrive."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, on_reject: Callable[[str], None]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, err: ServeError, more: bool = True) -> None:
        if isinstance(err, PayloadTooLarge):
            self.on_reject(scope.get("path", ""))
        # read (and drop) a bounded amount of what the client is still sending: closing on unread bytes
        # makes the kernel reset the connection, and the client may then never see the 413
        drained = 0
        while more and drained < DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        await error_response(err, {"connection": "close"})(scope, _nothing, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    err = BadRequest("Content-Length is not a number", "Content-Length")
                    await self._refuse(scope, receive, send, err, more=False)
                    return
        too_large = PayloadTooLarge(
            f"body: over the limit of {self.max_bytes} bytes; fix: send fewer rows per request", "body"
        )
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, too_large, more=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _nothing() -> Message:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}
