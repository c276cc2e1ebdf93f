"""`darkfab serve` and `darkfab ui` on an address they cannot listen on: one clear line, before anything else.

uvicorn's own words ("[Errno 98] error while attempting to bind") came after the server had started, the console
had already printed its admin token, and the exit status was uvicorn's 3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..helpers.loopback import free_port
from .conftest import Built, copy_store


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", free_port()))
        other.listen()
        yield other.getsockname()[1]


def _darkfab(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DARKFAB_UI_TOKEN": "t" * 32}
    return subprocess.run(
        [sys.executable, "-m", "darkfab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize("command", ["serve", "ui"])
def test_a_port_in_use_is_one_error_naming_it_and_the_fix(
    command: str, taken: int, built: Built, tmp_path: Path
) -> None:
    url = copy_store(built, tmp_path / "s")
    args = ["serve", "kinds"] if command == "serve" else ["ui"]
    run = _darkfab(*args, "--store", url, "--port", str(taken), cwd=tmp_path)
    said = run.stdout + run.stderr
    assert run.returncode == 1, said
    assert f"127.0.0.1:{taken}" in said and "in use" in said and "--port" in said, said
    assert "Traceback" not in said and "Errno" not in said, said
    assert "Started server process" not in said and "http://127.0.0.1" not in said, said  # nothing started


def test_an_address_this_machine_does_not_have_is_named(built: Built, tmp_path: Path) -> None:
    url = copy_store(built, tmp_path / "s")
    run = _darkfab("serve", "kinds", "--store", url, "--host", "192.0.2.1", "--port", str(free_port()), cwd=tmp_path)
    said = run.stdout + run.stderr
    assert run.returncode == 1, said
    assert "192.0.2.1" in said and "--host" in said, said
    assert "Traceback" not in said, said
