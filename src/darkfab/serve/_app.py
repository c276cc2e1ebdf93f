"""The HTTP face of the model server: Open Inference Protocol v2, a records API, feedback, admin, metrics.

:func:`create_app` only assembles: the service and credentials in ``app.state`` (what the routers' dependencies
read, see ``_deps``), the middleware (``BodyLimit``, ``Guard``), the error handlers, the lifespan, and one
``APIRouter`` per API: ``_routes_v1``, ``_routes_v2``, ``_routes_admin`` (admin and ``/metrics``).

APIs (each router's module lists its routes)::

    /v2/...      Open Inference Protocol v2: health, metadata, inference            (_routes_v2)
    /v1/...      predictions from JSON records, feedback, the routing state         (_routes_v1)
    /admin/...   promote, rollback, pause, resume, status; bearer token             (_routes_admin)
    /metrics     Prometheus text format, live figures labelled by version and role  (_routes_admin)

Every prediction answer names the version that produced it (``model_version``) and its ``role``
(``champion`` or ``challenger``: v1 top level, v2 ``parameters``); see ``_router`` for canary and shadow.

Errors are ``{"error": message, "field"?: where}`` with a 4xx status; the server never unpickles what a
request sends (bodies are JSON), and a body over ``max_body_bytes`` is refused with 413 before it is read.
Before any route: a foreign Host is 421, a POST with a foreign Origin 403, a body not declared JSON 415
(``_guard``). A 500 means the model raised on rows that passed every input check; it is recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import DarkfabError
from ..store import Store
from . import _routes_admin, _routes_v1, _routes_v2
from ._answer import rejected_counter
from ._deps import Credentials
from ._errors import ServeError
from ._guard import LOOPBACK_HOSTS, Guard, host_allowlist
from ._http import DEFAULT_MAX_BODY, BodyLimit, darkfab_error_handler, serve_error_handler
from ._metrics import ServeMetrics
from ._service import ModelService, ServiceOptions
from ._token import ensure_token, token_path

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11; only read by type checkers here


def _credentials(store: Store, token_file: str | Path | None, feedback_token: str | None) -> Credentials:
    """The admin token (read from ``token_file``, or made there) and the feedback token, checked."""
    if feedback_token is not None and not feedback_token.strip():
        raise ValueError("feedback_token: empty; give a secret, or None for feedback without a credential")
    token_at = Path(token_file) if token_file is not None else token_path(store.artifact_root)
    return Credentials(
        admin_token=ensure_token(token_at).encode(),
        token_file=token_at,
        feedback_token=feedback_token.strip().encode() if feedback_token is not None else None,
    )


def create_app(
    *,
    store: Store,
    factory: str,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    token_file: str | Path | None = None,
    allowed_hosts: Iterable[str] | None = None,
    feedback_token: str | None = None,
    **service: Unpack[ServiceOptions],
) -> FastAPI:
    """The model server of ``factory``'s champion (and challenger), as an ASGI app (serve it with uvicorn).

    The champion is loaded now (its artifact's hash verified), so a missing or damaged model fails here,
    not at the first request. The admin token is read from ``token_file`` (default: ``serve-token`` next
    to the store), or made there with mode 0600 when the file does not exist.

    Routing follows ``deploy`` when given, else the deploy section of the factory's stored spec: a
    ``challenger`` gets a canary share of requests or a shadow copy of them, and is promoted or rolled
    back after ``deploy.min_requests``. Alias moves made elsewhere are picked up every ``poll_interval_s``.
    ``seed`` seeds the canary draw; ``latency_floor_ms`` is the p95 below which latencies count as equal.
    These and the other ``service`` options (:class:`ServiceOptions`: ``log_predictions``, ``flush_interval_s``,
    ``flush_rows``, ``shadow_capacity``) go to :class:`ModelService` as given, with its defaults.

    ``on_aliases_moved(why)`` is called after this server moves the aliases; it must return at once.
    ``allowed_hosts``: the names the Host header may carry (default: the loopback names; ``*`` for any; see
    ``_guard``). ``feedback_token``: when given, ``/v1/feedback`` needs ``Authorization: Bearer <it>``.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    metrics = ServeMetrics()
    svc = ModelService(store=store, factory=factory, metrics=metrics, **service)
    credentials = _credentials(store, token_file, feedback_token)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title=f"darkfab model server: {factory}",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = svc
    app.state.metrics = metrics
    app.state.credentials = credentials
    app.state.token_file = credentials.token_file
    hosts = frozenset(LOOPBACK_HOSTS) if allowed_hosts is None else host_allowlist(allowed_hosts)
    app.add_middleware(Guard, hosts=hosts)  # inside BodyLimit: an oversized body is 413 whatever it claims to be
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, on_reject=rejected_counter(svc))
    app.exception_handler(ServeError)(serve_error_handler)
    app.exception_handler(DarkfabError)(darkfab_error_handler)
    for router in (_routes_v1.router, _routes_v2.router, _routes_admin.router, _routes_admin.metrics_router):
        # The routes themselves, not ``include_router``: FastAPI keeps an included router as a branch that it
        # walks on every request (about 5% of a one-row prediction's CPU). Each route carries its full path
        # and its own dependencies, so nothing of the router is lost.
        app.router.routes.extend(router.routes)
    return app
