"""Several `darkfab worker` processes share one factory through PostgreSQL; one is killed mid-trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import psycopg
import pytest

from .conftest import env_for, reap

IGNORING_SIGINT = """\
import signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a job in the background of a non-interactive shell starts
from darkfab.cli import main
sys.argv[0] = "darkfab"
main()
"""

SHARED = """\
name: shared
data: {source: sklearn:digits}
trainers:
  - name: random_forest
    space:
      n_estimators: {low: 150, high: 250}
      max_depth: {low: 6, high: 12}
search: {proposer: random, pruner: none}
budget: {trials: 14}
execution: {workers: 1, lease: 4s, latency_rows: 2}  # no queue_ahead: the workers announce themselves
gate: {bootstrap: 200}
"""


def _machine(tmp_path, name: str) -> dict[str, str]:
    return {"DARKFAB_ARTIFACTS": str(tmp_path / name / "artifacts")}


@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_share_a_campaign_and_a_killed_one_loses_nothing(cli, tmp_path, pg_url):
    url = pg_url  # a brand-new database (tests/conftest.py); psycopg reads it without the driver name
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    (tmp_path / "factory.yaml").write_text(SHARED)
    # every process has its own artifacts folder, as on separate machines: the store carries the artifacts
    workers = [
        cli.popen("worker", "factory.yaml", "--store", url, "--wait", "60s", env=_machine(tmp_path, f"w{i}"))
        for i in range(3)
    ]
    run = cli.popen("run", "factory.yaml", "--store", url, "--json", env=_machine(tmp_path, "coordinator"))
    victim = workers[0]
    deadline = time.monotonic() + 120
    killed_trial = None
    with psycopg.connect(plain, autocommit=True) as con:
        while time.monotonic() < deadline and killed_trial is None:
            time.sleep(0.2)
            try:
                row = con.execute(
                    "SELECT id FROM trials WHERE state = 'running' AND lease_owner LIKE %s",
                    (f"worker@%/{victim.pid}",),
                ).fetchone()
            except psycopg.errors.UndefinedTable:
                continue
            if row:
                killed_trial = row[0]
        assert killed_trial is not None, "the victim never claimed a trial"
        children = psutil.Process(victim.pid).children(recursive=True)
        os.kill(victim.pid, signal.SIGKILL)
        reap(victim)
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        for w in workers[1:]:
            _, worker_err = w.communicate(timeout=120)
            assert w.returncode == 0, worker_err
        psutil.wait_procs(children, timeout=15)
        states = dict(con.execute("SELECT state, count(*) FROM trials GROUP BY state").fetchall())
        per_trial = con.execute(
            "SELECT trial_id, count(*) FROM events WHERE kind IN ('completed', 'failed', 'pruned') GROUP BY trial_id"
        ).fetchall()
        owners = {r[0] for r in con.execute("SELECT DISTINCT worker FROM trials").fetchall()}
        requeued = con.execute(
            "SELECT count(*) FROM events WHERE kind = 'requeued' AND trial_id = %s", (killed_trial,)
        ).fetchone()[0]
        killed = con.execute("SELECT state, attempt, worker FROM trials WHERE id = %s", (killed_trial,)).fetchone()
        kept = con.execute("SELECT worker, artifact_path FROM trials WHERE artifact_path IS NOT NULL").fetchall()
        blobs = {r[0] for r in con.execute("SELECT sha256 FROM artifact_blobs").fetchall()}
        roster = [r[0] for r in con.execute("SELECT owner FROM workers").fetchall()]
    import json

    result = json.loads(out)
    assert result["trials"]["completed"] == 14 and result["champion"]["version"] == 1
    assert states == {"completed": 14}
    assert len(per_trial) == 14 and all(n == 1 for _, n in per_trial)  # every trial finished exactly once
    assert requeued == 1 and killed[0] == "completed" and killed[1] == 2 and str(victim.pid) not in killed[2]
    assert len([o for o in owners if o.startswith("worker@")]) >= 2
    assert any(w.startswith("worker@") for w, _ in kept) and all(digest in blobs for _, digest in kept)
    assert len(roster) == 1 and roster[0].endswith(
        f"/{victim.pid}"
    )  # those that exited retired; the killed one ages out
    assert cli("audit", "verify", "--store", url).returncode == 0
    time.sleep(4)  # one lease: the killed worker's announcement ages out; the others retired when they exited
    assert cli.json("status", "factory.yaml", "--store", url)["workers"] == []
    # a fourth machine, with an empty artifacts folder, predicts with the champion kept in the store
    from sklearn.datasets import load_digits

    load_digits(as_frame=True).frame.drop(columns="target").head(20).to_csv(tmp_path / "new.csv", index=False)
    elsewhere = cli.popen(
        "predict", "factory.yaml", "new.csv", "-o", "out.csv", "--store", url, env=_machine(tmp_path, "m4")
    )
    _, err = elsewhere.communicate(timeout=120)
    assert elsewhere.returncode == 0, err
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 21
    assert list((tmp_path / "m4" / "artifacts").rglob("*"))  # fetched from the store and cached there


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_status_shows_a_waiting_worker_until_it_stops(cli, tmp_path, stop):
    """A worker waiting for a campaign stops at once on Ctrl-C or SIGTERM (a cluster stopping its machine), even
    when it was started with SIGINT ignored (the background of a script), and leaves the roster."""
    from tests.cli.conftest import factory_text

    (tmp_path / "factory.yaml").write_text(factory_text(name="watched", trials=2))
    cli("run", "factory.yaml", "--no-loop")
    # --wait far longer than any test: a worker that only stops when its wait runs out fails the test below
    worker = subprocess.Popen(
        [sys.executable, "-c", IGNORING_SIGINT, "worker", "factory.yaml", "--wait", "600s", "--workers", "2"],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        shown = ""
        while time.monotonic() < deadline and "workers: 1 live" not in shown:
            time.sleep(0.5)
            shown = cli("status", "factory.yaml").stdout
        assert "workers: 1 live, 2 slot(s): worker@" in shown and f"/{worker.pid}" in shown, shown
        live = cli.json("status", "factory.yaml")["workers"]
        assert [(w["owner"].rsplit("/", 1)[1], w["slots"]) for w in live] == [(str(worker.pid), 2)]
    finally:
        worker.send_signal(stop)  # a worker that stops takes itself off the roster
        try:
            _, err = worker.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            raise AssertionError(f"the worker did not stop on {stop.name} within 60 s") from None
    assert worker.returncode == 130 and "interrupted" in err, (worker.returncode, err)
    assert "Traceback" not in err
    assert cli.json("status", "factory.yaml")["workers"] == []
