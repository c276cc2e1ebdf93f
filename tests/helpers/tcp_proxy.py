"""A TCP proxy on loopback that can be paused: the server behind it looks down (connections refused, open ones
cut) without stopping it. For outage tests against the shared PostgreSQL server, which must keep running.

Usage::

    with TcpProxy("127.0.0.1", 5432) as proxy:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/db"
        proxy.pause()   # refused from now on; open connections are closed
        proxy.resume()  # listening again on the same port
        proxy.cut_at(b"COMMIT", forward=True)  # the next COMMIT reaches the server, its answer never comes back
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._cut: tuple[bytes, bool, int] | None = None  # cut_at's marker, forward, times left
        self.cuts = 0
        self.port = 0
        self._listen()

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # paused or closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, client), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    def cut_at(self, marker: bytes, *, forward: bool, times: int = 1) -> None:
        """Cut the connection of the next ``times`` client messages that contain ``marker`` (a statement's text).

        ``forward``: the message reaches the server first, which runs it, and only its answer is lost (a
        COMMIT whose acknowledgement never comes back); otherwise the server never sees it.
        """
        with self._lock:
            self._cut = (marker, forward, times)

    def _cutting(self, data: bytes) -> bool | None:
        """None to pass ``data`` on; else whether to forward it before cutting the connection."""
        with self._lock:
            if self._cut is None or self._cut[0] not in data:
                return None
            marker, forward, times = self._cut
            self._cut = (marker, forward, times - 1) if times > 1 else None
            self.cuts += 1
            return forward

    def _pump(self, src: socket.socket, dst: socket.socket, client: socket.socket | None) -> None:
        try:
            while data := src.recv(65536):
                cut = None if client is None else self._cutting(data)
                if cut is not False:
                    dst.sendall(data)
                if cut is not None:
                    assert client is not None
                    client.shutdown(socket.SHUT_RDWR)  # the client sees the server go; the server runs what it got
                    break
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        """Refuse new connections and cut the open ones, as a server that went down."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close() alone does not
            self._listener.close()
            self._listener = None
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def resume(self) -> None:
        if self._listener is None:
            self._listen()

    def close(self) -> None:
        self.pause()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
