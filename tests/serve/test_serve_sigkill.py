"""SIGKILL of a real `darkfab serve`: every answered prediction reaches the store after a restart (issue 14)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from darkfab.store import Store

from ..helpers.loopback import free_port, wait_answers
from .conftest import Built, copy_store


def _serve(url: str, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "darkfab", "serve", "kinds", "--store", url, "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _ready(proc: subprocess.Popen[str], base: str) -> None:
    wait_answers(proc, f"{base}/v2/health/ready", within_s=90)


def _row(i: int) -> list[dict[str, Any]]:
    return [{"x": (i % 17) / 5 - 1.5, "count": i % 5, "colour": ("red", "green", "blue")[i % 3]}]


def test_sigkill_of_serve_loses_no_answered_prediction(built: Built, tmp_path: Path) -> None:
    url = copy_store(built, tmp_path / "kill")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(url, port, "--allow-host", "models.test")
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=10) as c:
            i = k
            while not stop.is_set():
                try:
                    r = c.post("/v1/models/kinds/predict", json=_row(i))
                except httpx.HTTPError:
                    return  # the server is gone
                if r.status_code == 200:
                    with lock:
                        answered.append(r.json()["request_id"])
                i += 4

    try:
        _ready(proc, base)
        with httpx.Client(base_url=base) as c:  # the name given with --allow-host, and a foreign one
            assert c.get("/v1/routing", headers={"host": f"models.test:{port}"}).status_code == 200
            assert c.get("/v1/routing", headers={"host": "evil.test"}).status_code == 421
        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # mid-traffic: answers still queued in memory die with it
        proc.wait(30)
        stop.set()
        for t in threads:
            t.join(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:  # the killed server's pipe, read by no one
            proc.stdout.close()
    assert len(answered) >= 300
    wal = Path(url.removeprefix("sqlite:///")).parent / "prediction-wal"
    assert list(wal.glob("*.jsonl")), "the killed server left its write-ahead segments"

    proc = _serve(url, port)  # the restart replays what the killed server had not written
    try:
        _ready(proc, base)
        with Store(url) as store:
            fid = store.get_factory("kinds").id
            logged = collections.Counter(p.request_id for p in store.list_predictions(fid))
        missing = [rid for rid in answered if rid not in logged]
        assert missing == [], f"{len(missing)} of {len(answered)} answered predictions lost"
        assert max(logged[rid] for rid in answered) == 1  # replayed once, never twice
        assert list(wal.glob("*.jsonl")) == [] or all(p.stat().st_size == 0 for p in wal.glob("*.jsonl"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    assert sorted(p.name for p in wal.iterdir()) == [], "a clean stop leaves no segment and no lock"
    assert os.path.isdir(wal)
