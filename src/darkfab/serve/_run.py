"""Running the server: resolve the factory (as the command line does, :func:`darkfab.store.resolve_factory`),
build the app, hand it to uvicorn on loopback by default."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from .._listen import listening_socket, serve_on
from ..store import REQUEST_WAIT_S, Store, resolve_factory
from ._app import create_app
from ._guard import host_allowlist

log = logging.getLogger("darkfab.serve")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    factory: str | None = None,
    *,
    store: str | Store | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
    access_log: bool = False,
    allow_hosts: Iterable[str] = (),
    **options: Any,
) -> None:
    """Serve ``factory``'s champion with uvicorn until interrupted; queued predictions are written on exit.

    ``options`` go to :func:`create_app` (``max_body_bytes``, ``token_file``, ``log_predictions``...).
    Binds to 127.0.0.1 unless told otherwise: exposing a model server is a decision to take on purpose.
    Requests must name the server by a loopback name, the address bound, or one of ``allow_hosts``
    (``*``: any) in their Host header.
    """
    own = not isinstance(store, Store)
    st = store if isinstance(store, Store) else Store(store, outage_wait_s=REQUEST_WAIT_S)
    app = None
    try:
        name = resolve_factory(st, factory)
        with listening_socket(host, port) as sock:  # a port in use is said before anything starts
            app = create_app(store=st, factory=name, allowed_hosts=host_allowlist(allow_hosts, bind=host), **options)
            log.info("serving %r v%s; admin token in %s", name, app.state.service.current.version, app.state.token_file)
            serve_on(app, sock, host=host, port=port, log_level=log_level, access_log=access_log)
    finally:
        if app is not None:
            app.state.service.close()
        if own:
            st.close()
