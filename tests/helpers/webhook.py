"""A real webhook on loopback for the alert tests: it records what is POSTed, or fails, or hangs."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hook:
    """What the webhook at ``url`` received (``mode`` ``ok``), and how many POSTs reached it."""

    url: str
    mode: str = "ok"
    received: list[dict[str, Any]] = field(default_factory=list)
    hits: int = 0


def _handler(hook: Hook, release: threading.Event) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            hook.hits += 1
            if hook.mode == "hang":
                release.wait(10)
                return
            if hook.mode == "fail":
                self.send_response(500)
                self.end_headers()
                return
            hook.received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def webhook_server(mode: str = "ok") -> Iterator[Hook]:
    """A real HTTP server on loopback: mode ``ok`` records POSTs, ``fail`` answers 500, ``hang`` never answers."""
    release = threading.Event()
    hook = Hook(url="", mode=mode)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(hook, release))
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        release.set()
        time.sleep(0.01)
        server.shutdown()
        server.server_close()
