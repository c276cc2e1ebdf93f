"""Processes that serve on loopback in the tests: a free port, and waiting until one answers."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_answers(proc: subprocess.Popen[str], url: str, *, within_s: float = 60.0, pause_s: float = 0.1) -> None:
    """Wait until ``url`` answers 200; AssertionError with what ``proc`` printed if it exits or takes longer than
    ``within_s`` (then it is killed first)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:  # stopped, so that reading what it printed cannot block
                proc.kill()
                proc.wait()
            raise AssertionError(f"{url} never answered:\n{proc.stdout.read() if proc.stdout else ''}")
        time.sleep(pause_s)
