"""A fake OpenAI-compatible chat-completions server: a real HTTP server on loopback, scripted per request.

Usage::

    with FakeLLM() as llm:
        llm.script(ok(proposals_text([...])), status(429, retry_after=1), slow(5.0), drop(), ok("garbage"))
        ...  # point search.llm.base_url at llm.base_url
        llm.requests  # every request received: {"body": ..., "headers": ...}

Each POST to ``/v1/chat/completions`` takes the next scripted reply; when the script is empty the
``responder`` (a function of the request body) answers, and without one the server answers HTTP 500.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    kind: str  # ok | status | slow | drop | raw | trickle
    content: str = ""
    code: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0
    then: Reply | None = None
    usage: dict[str, int] | None = None


def ok(content: str, *, usage: dict[str, int] | None = None) -> Reply:
    """HTTP 200, a chat completion whose message is ``content``; usage estimated unless given."""
    return Reply("ok", content=content, usage=usage)


def status(code: int, *, retry_after: float | str | None = None, body: str = '{"error": "scripted"}') -> Reply:
    """An HTTP error status, with ``Retry-After`` when given."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return Reply("status", code=code, headers=headers, body=body)


def raw(body: str, code: int = 200) -> Reply:
    """A body sent as it is (for instance, not JSON at all)."""
    return Reply("raw", code=code, body=body)


def slow(delay: float, then: Reply | None = None) -> Reply:
    """Wait ``delay`` seconds (past the client's timeout), then send ``then`` (if the client still listens)."""
    return Reply("slow", delay=delay, then=then or ok('{"proposals": []}'))


def trickle(content: str, *, every: float = 1.0) -> Reply:
    """HTTP 200 and a chat completion of ``content``, its body sent one byte every ``every`` seconds."""
    return Reply("trickle", content=content, delay=every)


def drop() -> Reply:
    """Close the connection without answering."""
    return Reply("drop")


def proposals_text(proposals: list[dict[str, Any]], notes: str = "") -> str:
    """A well-formed answer of the LLM proposer's format."""
    return json.dumps({"proposals": proposals, "notes": notes})


def asked_for(body: dict[str, Any]) -> int:
    """How many proposals the LLM proposer asked for in a request body."""
    text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
    found = re.findall(r"Propose exactly (\d+)", text)
    return int(found[-1]) if found else 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length)
        try:
            body = json.loads(raw_body)
        except json.JSONDecodeError:
            body = {"unreadable": raw_body.decode(errors="replace")}
        fake = self.server.fake
        reply = fake._next(body, dict(self.headers))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            reply = status(404, body='{"error": "unknown path"}')
        self._send(reply, body)

    def _send(self, reply: Reply, body: dict[str, Any]) -> None:
        if reply.kind == "slow":
            if self.server.fake.stopping.wait(reply.delay):
                return
            assert reply.then is not None
            reply = reply.then
        if reply.kind == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if reply.kind in ("ok", "trickle"):
            usage = reply.usage or {
                "prompt_tokens": max(1, len(json.dumps(body.get("messages", []))) // 4),
                "completion_tokens": max(1, len(reply.content) // 4),
            }
            usage = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
            payload = json.dumps(
                {
                    "id": f"chatcmpl-{self.server.fake.count}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "fake"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )
            code, headers = 200, {"Content-Type": "application/json"}
        else:
            payload, code, headers = reply.body, reply.code, {"Content-Type": "application/json", **reply.headers}
        data = payload.encode()
        try:
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if reply.kind == "trickle":
                fake = self.server.fake
                fake.trickled.append(0)
                slot = len(fake.trickled) - 1
                for i in range(len(data)):
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()
                    fake.trickled[slot] = i + 1
                    if fake.stopping.wait(reply.delay):
                        return
            else:
                self.wfile.write(data)
        except OSError:  # the client gave up (a timeout): nothing to answer
            self.close_connection = True

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeLLM


class FakeLLM:
    """A scripted chat-completions server on 127.0.0.1 (a free port)."""

    def __init__(self, responder: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self.replies: list[str] = []  # kind of each reply sent, in order
        self.trickled: list[int] = []  # bytes of each trickled answer written before the client went away
        self.stopping = threading.Event()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def count(self) -> int:
        return len(self.requests)

    def script(self, *replies: Reply) -> FakeLLM:
        with self._lock:
            self._script.extend(replies)
        return self

    @property
    def scripted_left(self) -> int:
        return len(self._script)

    def _next(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append({"body": body, "headers": headers})
            if self._script:
                reply = self._script.popleft()
            elif self.responder is not None:
                reply = self.responder(body)
            else:
                reply = status(500, body='{"error": "the fake LLM has no scripted reply left"}')
            self.replies.append(reply.kind)
            return reply

    def start(self) -> FakeLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CallLog(list):  # type: ignore[type-arg]
    """An LLM call sink kept as the store keeps ``llm_calls``: a call whose id is already held (the request's
    reservation, status ``reserved``) replaces it, at the end of the list."""

    def record(self, call: Any) -> None:
        self[:] = [c for c in self if c.call_id != call.call_id]
        self.append(call)
