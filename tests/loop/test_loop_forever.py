"""`darkfab run FACTORY --forever`: a service that stops cleanly on SIGTERM and resumes when started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from darkfab.store import Store

from ..helpers.loopback import free_port
from .conftest import Traffic, world


def _start(factory_file: Path, store: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DARKFAB_STORE": store}
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "darkfab", "run", str(factory_file), "--forever", "--port", str(port)],
            cwd=factory_file.parent,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the service exited before it answered"
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def _wait_windows(store: str, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Store(store) as st:
            if len(st.list_monitor_windows(st.get_factory("shifting").id)) >= n:
                return
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


@pytest.mark.slow
def test_forever_stops_cleanly_and_resumes(factory_file: Path, tmp_path: Path) -> None:
    store = str(tmp_path / "forever.db")
    log = tmp_path / "forever.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    proc = _start(factory_file, store, port, log)
    try:
        _wait_ready(url, proc)
        traffic = Traffic(url, "shifting")
        answers = traffic.send(world(50, drifted=False, seed=5))
        traffic.close()
        served = {a["model_version"] for a in answers}
        _wait_windows(store, 1)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    with Store(store) as st:
        fid = st.get_factory("shifting").id
        assert len(st.list_predictions(fid)) == 50  # every prediction reached the log before exit
        windows = [w.number for w in st.list_monitor_windows(fid)]
        campaigns = len(st.list_campaigns(fid))
        stops = st.list_events(factory_id=fid, kinds=("lifecycle_serving_stopped",))
    assert windows == [1] and campaigns == 1 and len(stops) == 1

    proc = _start(factory_file, store, port, log)
    try:
        _wait_ready(url, proc)
        traffic = Traffic(url, "shifting")
        again = traffic.send(world(40, drifted=False, seed=6))
        traffic.close()
        assert {a["model_version"] for a in again} == served  # the same champion, no new campaign
        _wait_windows(store, 2)
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    with Store(store) as st:
        assert [w.number for w in st.list_monitor_windows(fid)] == [1, 2]  # numbering goes on
        assert len(st.list_campaigns(fid)) == 1
        assert len(st.list_predictions(fid)) == 90
