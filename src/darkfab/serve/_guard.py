"""What keeps a web page in the user's browser from using a server bound to loopback.

Binding to 127.0.0.1 stops other machines, not a page the user opens: it can send "simple" requests
(text/plain or form bodies, no preflight) to 127.0.0.1, and through DNS rebinding a name it controls can
resolve to 127.0.0.1. So, before a route runs:

- ``Host`` must name an allowed host (loopback names by default, any port), else 421 (DNS rebinding);
- a request that changes state or predicts (POST) carrying an ``Origin`` must come from the server's own
  origin (the Origin's host and port equal the Host header), else 403; a client without ``Origin``
  (curl, httpx, the CLI) is not a browser and passes;
- a POST with a body must say ``Content-Type: application/json`` (a browser cannot send that without a
  CORS preflight, which this server never answers), else 415.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._errors import Forbidden, MisdirectedHost, ServeError, UnsupportedMediaType

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ANY_HOST = "*"
_UNSPECIFIED = frozenset(("0.0.0.0", "[::]", ""))
_BODY_METHODS = frozenset((b"POST", b"PUT", b"PATCH", b"DELETE"))


def host_name(value: str) -> str:
    """The host part of a Host header or an allowlist entry, lower case, IPv6 in brackets, no port."""
    text = value.strip().lower()
    if text.startswith("["):
        end = text.find("]")
        return text[: end + 1] if end > 0 else text
    if text.count(":") > 1:  # a bare IPv6 address (an allowlist entry such as ::1)
        return f"[{text}]"
    return text.partition(":")[0]


def host_allowlist(extra: Iterable[str] = (), *, bind: str | None = None) -> frozenset[str]:
    """The loopback names, the address bound (when it names one host), and ``extra`` (``*``: any host)."""
    names = {*LOOPBACK_HOSTS, *(host_name(h) for h in extra if h.strip())}
    if bind is not None and host_name(bind) not in _UNSPECIFIED:
        names.add(host_name(bind))
    return frozenset(names)


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


class Guard:
    """ASGI middleware: the Host allowlist, the Origin check and JSON-only bodies (see the module doc)."""

    def __init__(
        self, app: ASGIApp, *, hosts: frozenset[str], on_reject: Callable[[str, str], None] | None = None
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.any_host = ANY_HOST in hosts
        self.on_reject = on_reject

    def check(self, scope: Scope) -> ServeError | None:
        host = origin = content_type = None
        length: bytes | None = None
        chunked = False
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"content-length":
                length = value.strip()
            elif key == b"transfer-encoding":
                chunked = True
        if not self.any_host and (host is None or host_name(host) not in self.hosts):
            return MisdirectedHost(
                f"Host: {host!r:.100} is not a name this server answers to ({', '.join(sorted(self.hosts))}); "
                "fix: use one of them, or start the server with --allow-host NAME",
                "Host",
            )
        if scope.get("method", "").encode() not in _BODY_METHODS:
            return None
        if origin is not None:
            parts = urlsplit(origin.strip())
            if parts.scheme not in ("http", "https") or host is None or parts.netloc.lower() != host.strip().lower():
                return Forbidden(
                    f"Origin: {origin!r:.100} is not this server; a web page may not send predictions, feedback "
                    "or admin requests here; fix: call the server from a program (no Origin header)",
                    "Origin",
                )
        if (length is None and not chunked) or length == b"0":  # no body: an admin action without arguments
            return None
        if content_type is None or _media_type(content_type) != "application/json":
            return UnsupportedMediaType(
                f"Content-Type: {content_type!r:.100} is not accepted; this endpoint takes JSON; fix: send the body "
                "with 'Content-Type: application/json'",
                "Content-Type",
            )
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self.check(scope)
        if refused is None:
            await self.app(scope, receive, send)
            return
        if self.on_reject is not None:
            self.on_reject(scope.get("path", ""), type(refused).__name__)
        await JSONResponse(refused.body(), status_code=refused.status)(scope, _nothing, send)


async def _nothing() -> Message:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}
