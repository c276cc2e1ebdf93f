"""The listening socket of darkfab's HTTP servers (`darkfab serve`, `darkfab ui`), opened before anything starts.

uvicorn binds its own socket after the application has started, and says only "[Errno 98] error while attempting
to bind" with exit status 3. Opening the socket first turns a port in use, an address the machine does not have or
a privileged port into one :class:`~darkfab.errors.DarkfabError` that names the address and the fix, before the
server prints an address or a token; uvicorn then serves on that socket (``Server.run(sockets=[...])``), so no
other program can take the port in between.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from .errors import DarkfabError

BACKLOG = 2048  # uvicorn's own default


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _why(err: OSError, host: str, port: int) -> str:
    if err.errno == errno.EADDRINUSE:
        return f"port {port} is in use (another server, perhaps another darkfab serve or ui); fix: stop it, or pass --port with a free port"
    if err.errno == errno.EADDRNOTAVAIL:
        return f"this machine has no address {host}; fix: pass --host with one of its addresses (the default, 127.0.0.1, is always there)"
    if err.errno == errno.EACCES:
        return f"port {port} needs privileges this user does not have; fix: pass --port 1024 or above"
    return f"{err.strerror or err}; fix: check --host and --port"


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening, for ``uvicorn.Server.run(sockets=[...])``."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise DarkfabError(
            f"cannot listen on {_address(host, port)}: the host name does not resolve ({err.strerror}); fix: pass --host with an address of this machine"
        ) from None
    family, kind, proto, _, addr = found[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait out TIME_WAIT
        # accepted connections inherit it: without it a small answer can wait ~40 ms for a delayed ACK
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as err:
        sock.close()
        raise DarkfabError(f"cannot listen on {_address(host, port)}: {_why(err, host, port)}") from None
    sock.set_inheritable(True)
    return sock


def serve_on(app: Any, sock: socket.socket, **config: Any) -> None:
    """Run ``app`` with uvicorn on ``sock`` (from :func:`listening_socket`, which the caller closes) until
    interrupted."""
    import uvicorn

    try:
        uvicorn.Server(uvicorn.Config(app, **config)).run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the SIGINT it shut down on; the shutdown is done (as uvicorn.run does)
