"""The prediction log: the store's methods (SQLite and PostgreSQL) and the batching writer thread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest

from darkfab.errors import NotFoundError, StoreError
from darkfab.serve import PredictionLogger, ServeMetrics
from darkfab.store import Store

from ..helpers.loopback import free_port, wait_answers
from .conftest import Built, copy_store
from .test_serve_http import records


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        with Store(f"sqlite:///{tmp_path / 'log.db'}") as st:
            yield st
        return
    with Store(request.getfixturevalue("pg_url")) as st:  # a brand-new database (tests/conftest.py)
        yield st


def _rows(fid: int, request_id: str, n: int, version: int = 1) -> list[dict]:
    return [
        {
            "factory_id": fid,
            "version": version,
            "request_id": request_id,
            "row": i,
            "features": {"x": i, "colour": "red"},
            "output": {"prediction": "good", "probabilities": [0.2, 0.8]},
        }
        for i in range(n)
    ]


def test_log_predictions_and_feedback(store: Store) -> None:
    fid = store.ensure_factory("f", {"name": "f"}).id
    events = len(store.list_events())
    assert store.log_predictions(_rows(fid, "a", 3) + _rows(fid, "b", 1, version=2)) == 4
    assert store.log_predictions([]) == 0
    assert len(store.list_events()) == events  # no audit event per prediction
    rows = store.list_predictions(fid)
    assert [(r.request_id, r.row, r.version) for r in rows] == [("a", 0, 1), ("a", 1, 1), ("a", 2, 1), ("b", 0, 2)]
    assert rows[0].features == {"x": 0, "colour": "red"} and rows[0].output["probabilities"] == [0.2, 0.8]
    assert rows[0].created_at.tzinfo is not None and rows[0].label is None and rows[0].labelled_at is None
    assert [r.request_id for r in store.list_predictions(fid, version=2)] == ["b"]
    assert len(store.list_predictions(fid, limit=2)) == 2

    assert store.add_feedback(fid, "a", "bad", row=1) == 1
    assert store.add_feedback(fid, "b", 3.5) == 1
    assert store.add_feedback(fid, "a", "good") == 3
    labelled = store.list_predictions(fid, labelled=True)
    assert [r.label for r in labelled] == ["good", "good", "good", 3.5]
    assert all(r.labelled_at is not None for r in labelled)
    assert store.list_predictions(fid, labelled=False) == []
    with pytest.raises(NotFoundError, match="'zzz'"):
        store.add_feedback(fid, "zzz", 1)
    with pytest.raises(NotFoundError, match="row 9"):
        store.add_feedback(fid, "a", 1, row=9)
    other = store.ensure_factory("g", {"name": "g"}).id
    with pytest.raises(NotFoundError):
        store.add_feedback(other, "a", 1)  # request ids belong to their factory


def test_record_feedback_write_once_and_last_wins(store: Store) -> None:
    fid = store.ensure_factory("f", {"name": "f"}).id
    store.log_predictions(_rows(fid, "a", 3) + _rows(fid, "b", 2))
    assert store.logged_keys(fid, ["a", "b", "zzz"]) == {("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1)}
    done = store.record_feedback(fid, "a", "good", row=1)
    assert (done.labelled, done.unchanged, done.conflicts) == (1, 0, ())
    again = store.record_feedback(fid, "a", "good", row=1)  # the same label: nothing to do
    assert (again.labelled, again.unchanged, again.conflicts) == (0, 1, ())
    refused = store.record_feedback(fid, "a", "bad")  # write-once: row 1 holds "good", so nothing changes
    assert refused.labelled == 0 and refused.conflicts == ((1, "good"),)
    assert [r.label for r in store.list_predictions(fid, request_id="a")] == [None, "good", None]
    replaced = store.record_feedback(fid, "a", "bad", write_once=False)
    assert replaced.labelled == 3 and replaced.conflicts == ((1, "good"),)
    assert [r.label for r in store.list_predictions(fid, request_id="a")] == ["bad"] * 3
    assert store.record_feedback(fid, "b", 1.0).labelled == 2
    assert store.record_feedback(fid, "b", 1).conflicts == ()  # 1 and 1.0: the same number
    assert store.record_feedback(fid, "b", True).conflicts == ((0, 1.0), (1, 1.0))  # a boolean is not a number
    with pytest.raises(NotFoundError, match="'zzz'"):
        store.record_feedback(fid, "zzz", 1)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ({"factory_id": 1}, "missing keys"),
        ({"version": "1"}, "version must be an integer"),
        ({"request_id": ""}, "request_id"),
        ({"features": [1, 2]}, "features must be a dict"),
        ({"created_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"colour": 1}, "unknown keys"),
    ],
)
def test_bad_rows_are_refused_whole(tmp_path: Path, row: dict, match: str) -> None:
    with Store(f"sqlite:///{tmp_path / 'b.db'}") as store:
        fid = store.ensure_factory("f", {"name": "f"}).id
        good = _rows(fid, "a", 1)[0]
        bad = {**good, **row} if "factory_id" not in row else {"factory_id": 1}
        with pytest.raises(StoreError, match=match):
            store.log_predictions([good, bad])
        assert store.list_predictions(fid) == []
        when = datetime(2026, 1, 2, tzinfo=timezone.utc)
        store.log_predictions([{**good, "created_at": when}])
        assert store.list_predictions(fid)[0].created_at == when


def test_logger_batches_flushes_and_drains_on_close(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'q.db'}") as store:
        fid = store.ensure_factory("f", {"name": "f"}).id
        metrics = ServeMetrics()
        logger = PredictionLogger(store, metrics, interval_s=0.05, batch_rows=7, capacity_rows=50)
        for i in range(10):
            assert logger.submit(_rows(fid, f"r{i}", 3))
        assert logger.flush()
        assert len(store.list_predictions(fid)) == 30
        assert not logger.submit(_rows(fid, "huge", 51))  # over capacity: dropped, never blocks
        assert logger.submit(_rows(fid, "last", 2))
        logger.close()
        logger.close()
        assert len(store.list_predictions(fid)) == 32
        assert not logger.submit(_rows(fid, "after", 1))
        text = metrics.render().decode()
        assert "darkfab_prediction_log_written_total 32.0" in text
        assert "darkfab_prediction_log_dropped_total 52.0" in text


def test_a_failing_store_never_stops_the_logger(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'e.db'}") as store:
        metrics = ServeMetrics()
        logger = PredictionLogger(store, metrics, interval_s=0.02)
        logger.submit([{"factory_id": 1}])  # refused by the store
        assert logger.flush()
        fid = store.ensure_factory("f", {"name": "f"}).id
        logger.submit(_rows(fid, "ok", 1))
        logger.close()
        assert len(store.list_predictions(fid)) == 1
        assert "darkfab_prediction_log_errors_total 1.0" in metrics.render().decode()


def test_write_ahead_line_is_on_disk_when_submit_returns_and_gone_once_written(tmp_path: Path) -> None:
    wal = tmp_path / "wal"
    with Store(f"sqlite:///{tmp_path / 'w.db'}") as store:
        fid = store.ensure_factory("f", {"name": "f"}).id
        logger = PredictionLogger(store, ServeMetrics(), interval_s=60, wal_dir=wal)  # no cycle unless asked
        logger.start()
        stamped = [dict(r, created_at=datetime.now(timezone.utc)) for r in _rows(fid, "ahead", 2)]
        assert logger.submit(stamped)
        lines = [json.loads(line) for p in wal.glob("*.jsonl") for line in p.read_bytes().splitlines()]
        assert [(r["request_id"], r["row"]) for line in lines for r in line] == [("ahead", 0), ("ahead", 1)]
        assert lines[0][0]["created_at"] == stamped[0]["created_at"].isoformat()
        assert logger.flush()
        assert len(store.list_predictions(fid)) == 2
        deadline = time.monotonic() + 30  # against hanging only: the segment is deleted just after the write
        while [p for p in wal.glob("*.jsonl") if p.stat().st_size]:
            assert time.monotonic() < deadline, "the written segment was never deleted"
            time.sleep(0.01)
        assert len(list(wal.glob("*.jsonl"))) <= 2  # at most the current segment and the one opened ahead
        assert logger.submit(_rows(fid, "after", 1))  # written to the segment that was opened ahead
        logger.close()
        assert len(store.list_predictions(fid)) == 3
    assert sorted(p.name for p in wal.iterdir()) == [], "a clean close leaves no segment and no lock"


def test_write_ahead_keeps_awkward_values_as_the_store_keeps_them_without_it(tmp_path: Path) -> None:
    """numpy scalars, NaN, an integer beyond 64 bits and a datetime: the segment line (orjson, or the standard
    encoder where orjson cannot) reads back to what the store holds when the rows go to it directly."""
    stored = {}
    for name, wal in (("direct", None), ("ahead", tmp_path / "wal")):
        with Store(f"sqlite:///{tmp_path / f'{name}.db'}") as store:
            fid = store.ensure_factory("f", {"name": "f"}).id
            logger = PredictionLogger(store, ServeMetrics(), interval_s=60, wal_dir=wal)
            logger.start()
            when = datetime(2026, 12, 1, 14, 0, 0, 123456, tzinfo=timezone.utc)
            awkward = {"f64": np.float64(0.1), "i64": np.int64(7), "nan": float("nan"), "text": "é"}
            assert logger.submit([dict(r, created_at=when, features=awkward) for r in _rows(fid, "odd", 1)])
            assert logger.submit([dict(r, created_at=when, features={"big": 2**70}) for r in _rows(fid, "big", 1)])
            if wal is not None:
                lines = [json.loads(line) for p in wal.glob("*.jsonl") for line in p.read_bytes().splitlines()]
                assert [row["features"] for line in lines for row in line] == [
                    {"f64": 0.1, "i64": 7, "nan": None, "text": "é"},
                    {"big": 2**70},
                ]
                assert lines[0][0]["created_at"] == when.isoformat()
            assert logger.flush()
            logger.close()
            stored[name] = [(p.request_id, p.features, p.created_at) for p in store.list_predictions(fid)]
    assert stored["ahead"] == stored["direct"]
    assert len(stored["direct"]) == 2


def test_serve_command_writes_queued_predictions_on_shutdown(built: Built, tmp_path: Path) -> None:
    url = copy_store(built, tmp_path / "cmd")
    port = free_port()
    script = (
        "import typer\nfrom darkfab.cli.serve import commands\napp = typer.Typer()\ncommands.register(app)\napp()\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "serve", "kinds", "--store", url, "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_answers(proc, f"{base}/v2/health/ready")
        ids = [httpx.post(f"{base}/v1/models/kinds/predict", json=records(2)).json()["request_id"] for _ in range(5)]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "admin token in" in out and "serve-token" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with Store(url) as store:
        fid = store.get_factory("kinds").id
        logged = {r.request_id for r in store.list_predictions(fid)}
        assert set(ids) <= logged
