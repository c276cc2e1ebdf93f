"""`darkfab ui`: the oversight console."""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from ..errors import DarkfabError
from ._common import Commands, StoreOpt, err

commands = Commands()

TOKEN_ENV = "DARKFAB_UI_TOKEN"
MIN_TOKEN = 16


@commands.command()
def ui(
    host: Annotated[str, typer.Option("--host", help="address to listen on (loopback by default)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8765,
    store: StoreOpt = None,
) -> None:
    """Serve the oversight console: factories, campaigns, trials, model cards, monitor, timeline and audit.

    Reading needs no login; acting (rolling back, approving or rejecting a pending version, pausing or
    resuming a factory) needs the admin token from $DARKFAB_UI_TOKEN, or the one printed at start.
    """
    from .._listen import listening_socket, serve_on
    from ..store import REQUEST_WAIT_S, Store
    from ..ui import create_app

    token = os.environ.get(TOKEN_ENV, "")
    if token and len(token) < MIN_TOKEN:
        raise DarkfabError(
            f"${TOKEN_ENV} is {len(token)} characters long; fix: use at least {MIN_TOKEN} random characters"
        )
    printed = not token
    token = token or secrets.token_urlsafe(24)
    st = Store(store, outage_wait_s=REQUEST_WAIT_S)  # a page waits seconds for a store that is out, then says so
    try:
        with listening_socket(host, port) as sock:  # a port in use is said before a token is printed
            app = create_app(st, token=token)
            err.print(f"darkfab console for {st!r} at http://{host}:{port}/", highlight=False, soft_wrap=True)
            if host not in ("127.0.0.1", "localhost", "::1"):
                err.print(
                    f"warning: listening on {host}: anyone who reaches it can READ every page (acting needs the token); "
                    "put it behind a proxy with authentication, or keep it on loopback",
                    highlight=False,
                    soft_wrap=True,
                )
            if printed:
                err.print(f"admin token (set ${TOKEN_ENV} to choose one): {token}", highlight=False, soft_wrap=True)
            serve_on(app, sock, host=host, port=port, log_level="warning")
    finally:
        st.close()
