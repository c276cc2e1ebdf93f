"""A real `darkfab serve` on PostgreSQL keeps answering while the store is out (issue 14, store outages).

The shared server keeps running: `serve` reaches it through a TCP proxy that is paused (open connections cut,
new ones refused). Predictions answered meanwhile wait in the prediction log (queue and write-ahead file);
once the proxy is resumed the server says the store is back, and every one of them reaches the store once.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import darkfab
from darkfab.serve import PredictionLogger, ServeMetrics, create_app
from darkfab.store import Store

from ..helpers.loopback import free_port
from ..helpers.tcp_proxy import TcpProxy
from .conftest import LiveServer, _spec, rows_frame

OUTAGE_S = 8.0


def _row(i: int) -> list[dict[str, Any]]:
    return [{"x": (i % 17) / 5 - 1.5, "count": i % 5, "colour": ("red", "green", "blue")[i % 3]}]


def _logged(direct: sa.Engine) -> dict[str, int]:
    """request_id -> how many rows the store holds for it, read straight from the server (not the proxy)."""
    with direct.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, count(*) AS n FROM predictions GROUP BY request_id"))
        return {r.request_id: r.n for r in rows}


def _wait_for(check: Any, seconds: float, what: str, proc: subprocess.Popen[bytes], out: Path) -> None:
    deadline = time.monotonic() + seconds  # against hanging only, not a claim about speed
    while not check():
        assert proc.poll() is None, f"the server died: {out.read_text()}"
        assert time.monotonic() < deadline, f"{what}; server log:\n{out.read_text()}"
        time.sleep(0.2)


def _answered(c: httpx.Client, first: int, n: int) -> list[str]:
    ids = []
    for i in range(first, first + n):
        r = c.post("/v1/models/kinds/predict", json=_row(i))
        assert r.status_code == 200, r.text
        ids.append(r.json()["request_id"])
    return ids


def _trained(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A champion of factory ``kinds`` in the PostgreSQL store at ``pg_url`` (key and artifacts in tmp_path)."""
    monkeypatch.setenv("DARKFAB_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "artifacts"))
    rows_frame().to_csv(tmp_path / "rows.csv", index=False)
    with Store(pg_url) as store:
        darkfab.Factory(_spec("kinds", str(tmp_path / "rows.csv"), "kind"), store=store).run()


@contextmanager
def _serving(tmp_path: Path, url: sa.URL, out: Path) -> Iterator[tuple[httpx.Client, subprocess.Popen[bytes]]]:
    """`darkfab serve kinds` on the store at ``url`` (its output in ``out``), ready; stopped with SIGINT after."""
    port = free_port()
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "darkfab", "serve", "kinds", "--store", url.render_as_string(hide_password=False),
             "--port", str(port)],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:

                def up() -> bool:
                    try:
                        return c.get("/v2/health/ready").status_code == 200
                    except httpx.HTTPError:
                        return False

                _wait_for(up, 90, "the server did not start", proc, out)
                yield c, proc
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_answers_while_postgresql_is_out_and_logs_every_prediction_once_back(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _trained(tmp_path, pg_url, monkeypatch)
    url = sa.make_url(pg_url)
    direct = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    out = tmp_path / "serve.log"
    with (
        TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
        _serving(tmp_path, url.set(host="127.0.0.1", port=proxy.port), out) as (c, proc),
    ):
        before = _answered(c, 0, 20)
        _wait_for(lambda: set(before) <= set(_logged(direct)), 60, "not logged before the outage", proc, out)
        proxy.pause()
        during: list[str] = []
        paused_at = time.monotonic()
        while time.monotonic() - paused_at < OUTAGE_S:  # answers keep coming while the store is out
            during += _answered(c, 1000 + len(during), 10)
            time.sleep(0.5)
        logged_during = _logged(direct)
        assert not set(during) & set(logged_during)  # truly out: nothing reached the store meanwhile
        assert "cannot log" in out.read_text(), out.read_text()  # the outage is named in the log
        proxy.resume()
        _wait_for(lambda: set(during) <= set(_logged(direct)), 120, "predictions lost after the outage", proc, out)
        after = _answered(c, 5000, 10)
        _wait_for(lambda: set(after) <= set(_logged(direct)), 60, "not logged after the outage", proc, out)
    logged = _logged(direct)
    direct.dispose()
    log = out.read_text()
    assert proc.returncode == 0, log
    assert "is back after" in log, log  # the server says when the store is back
    assert len(during) >= 20
    assert all(logged[rid] == 1 for rid in before + during + after)  # every answered prediction, once
    assert len(logged) == len(before) + len(during) + len(after)


@pytest.mark.postgres
def test_rows_refused_in_an_outage_longer_than_the_wait_reach_the_store_without_a_restart(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the store gives up after 0.5 s instead of 300 s: the writer's batch is refused, its segment kept
    monkeypatch.setattr("darkfab.store._base.OUTAGE_WAIT_S", 0.5)
    monkeypatch.setenv("DARKFAB_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    url = sa.make_url(pg_url)
    direct = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with Store(proxied) as store:
            fid = store.ensure_factory("f", {"name": "f"}).id
            metrics = ServeMetrics()
            logger = PredictionLogger(store, metrics, interval_s=0.05, wal_dir=tmp_path / "wal")
            logger.start()
            proxy.pause()
            for i in range(5):
                assert logger.submit(_log_rows(fid, f"out{i}"))
            deadline = time.monotonic() + 60  # against hanging only
            while "darkfab_prediction_log_errors_total 0.0" in metrics.render().decode():
                assert time.monotonic() < deadline, "the write was never refused"
                time.sleep(0.05)
            assert list((tmp_path / "wal").glob("*.jsonl")), "the refused rows are kept in the write-ahead log"
            proxy.resume()
            while len(_logged(direct)) < 5:
                assert time.monotonic() < deadline, "the refused rows never reached the store"
                time.sleep(0.05)
            logger.close()
    logged = _logged(direct)
    direct.dispose()
    assert logged == {f"out{i}": 1 for i in range(5)}  # each once
    assert [p for p in (tmp_path / "wal").glob("*.jsonl") if p.stat().st_size] == []


def _log_rows(fid: int, request_id: str) -> list[dict[str, Any]]:
    return [
        {
            "factory_id": fid,
            "version": 1,
            "request_id": request_id,
            "created_at": datetime.now(timezone.utc),
            "features": {"x": 1.0},
            "output": {"prediction": "good"},
        }
    ]


@pytest.mark.postgres
def test_a_long_outage_is_one_line_in_the_server_log_and_its_predictions_arrive_after(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the store gives up after 0.5 s instead of 300 s: the watcher's reads and the log's writes are refused
    monkeypatch.setattr("darkfab.store._base.OUTAGE_WAIT_S", 0.5)
    _trained(tmp_path, pg_url, monkeypatch)
    url = sa.make_url(pg_url)
    direct = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with Store(proxied) as store, caplog.at_level(logging.INFO):
            server = LiveServer(create_app(store=store, factory="kinds", poll_interval_s=0.1, flush_interval_s=0.05))
            try:
                with server.client() as c:
                    proxy.pause()
                    deadline = time.monotonic() + 60  # against hanging only
                    while "routing watcher" not in caplog.text:
                        assert time.monotonic() < deadline, caplog.text
                        time.sleep(0.1)
                    during = _answered(c, 0, 10)  # still answered
                    while "kept in the write-ahead log; written once the store is back" not in caplog.text:
                        assert time.monotonic() < deadline, caplog.text
                        time.sleep(0.1)
                    proxy.resume()
                    while not set(during) <= set(_logged(direct)):
                        assert time.monotonic() < deadline, caplog.text
                        time.sleep(0.1)
            finally:
                server.stop()
    logged = _logged(direct)
    direct.dispose()
    assert all(logged[rid] == 1 for rid in during)
    watcher = [r for r in caplog.records if "routing watcher" in r.getMessage()]
    assert watcher and all(r.exc_info is None for r in watcher), "a store outage is one line, not a traceback"
    assert "Traceback" not in caplog.text


@pytest.mark.slow
@pytest.mark.postgres
def test_admin_reads_in_an_outage_answer_503_without_holding_up_predictions(
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # /admin/status read the store on the server's event loop: in an outage every request, predictions and
    # health checks included, waited behind it for the store's 300 s, and then it answered 500
    _trained(tmp_path, pg_url, monkeypatch)
    url = sa.make_url(pg_url)
    out = tmp_path / "serve.log"
    with (
        TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
        _serving(tmp_path, url.set(host="127.0.0.1", port=proxy.port), out) as (c, proc),
    ):
        admin = {"authorization": f"Bearer {(tmp_path / 'serve-token').read_text().strip()}"}
        assert c.get("/admin/status", headers=admin).status_code == 200
        proxy.pause()
        answers: dict[str, httpx.Response] = {}

        def ask(path: str) -> None:
            with httpx.Client(base_url=str(c.base_url), timeout=600) as slow:
                answers[path] = slow.get(path, headers=admin)

        askers = [threading.Thread(target=ask, args=(p,)) for p in ("/admin/status", "/v1/routing")]
        for t in askers:
            t.start()
        time.sleep(3.0)  # both are in the server, waiting for the store (it waits 10 s)
        assert all(t.is_alive() for t in askers), answers
        during = _answered(c, 0, 5)  # predictions and health checks are answered meanwhile
        assert c.get("/v2/health/live").status_code == 200
        assert all(t.is_alive() for t in askers), "the admin reads did not wait for the store"
        for t in askers:
            t.join()
        for path, r in answers.items():
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers.get("retry-after", "").isdigit(), r.headers
            message = r.json()["error"]
            assert "store" in message and "fix:" in message, message
        proxy.resume()
        _wait_for(lambda: c.get("/admin/status", headers=admin).status_code == 200, 60, "not back", proc, out)
    assert len(during) == 5
    assert "Traceback" not in out.read_text(), out.read_text()
