"""Kill, crash, hang and budget: the factory loses nothing that was complete and goes on."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import psutil
import pytest

from ..helpers.sqlite import sqlite_db
from .conftest import reap

SLOWISH = """\
name: durable
data: {source: sklearn:digits}
trainers:
  - name: random_forest
    space:
      n_estimators: {low: 60, high: 120}
      max_depth: {low: 4, high: 12}
search: {proposer: random, pruner: none}
budget: {trials: 14}
execution: {workers: 2, latency_rows: 2}
gate: {bootstrap: 200}
"""


def completed_rows(db):
    with sqlite_db(db) as con:
        return con.execute(
            "SELECT t.id, t.state, t.attempt, t.finished_at, e.value FROM trials t "
            "LEFT JOIN evaluations e ON e.trial_id = t.id WHERE t.state = 'completed' ORDER BY t.id"
        ).fetchall()


@pytest.mark.slow
def test_sigkill_mid_campaign_then_rerun_resumes_without_loss_or_repeats(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(SLOWISH)
    db = tmp_path / ".darkfab" / "darkfab.db"
    proc = cli.popen("run", "factory.yaml", "--json")
    children: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                if len(completed_rows(db)) >= 4:
                    break
            except sqlite3.OperationalError:
                continue
    else:
        proc.kill()
        reap(proc)
        pytest.fail("the run never completed 4 trials")
    children = psutil.Process(proc.pid).children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)
    reap(proc)
    before = completed_rows(db)
    assert 4 <= len(before) < 14
    gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"workers outlived the killed factory: {alive}"

    result = cli.json("run", "factory.yaml", timeout=300)
    assert result["resumed"] is True and result["campaign_number"] == 1
    after = completed_rows(db)
    finished = result["trials"]["completed"] + result["trials"]["failed"] + result["trials"]["pruned"]
    assert finished == 14
    assert before == [row for row in after if row[0] in {b[0] for b in before}]  # untouched, never re-run
    assert all(row[2] == 1 for row in before)
    assert len({row[0] for row in after}) == len(after)
    assert result["champion"]["version"] == 1
    assert cli("audit", "verify").returncode == 0


FAULTY = """\
name: faulty
data: {{source: sklearn:iris}}
trainers:
  - logistic_regression
  - name: broken
    estimator: darkfab.testing.faulty:{cls}
    params: {params}
search: {{proposer: random, pruner: none, seed: 3}}
budget: {{trials: 8}}
execution: {{workers: 2, trial_timeout: {timeout}, retries: 1, latency_rows: 2, memory_mb: {memory}}}
gate: {{bootstrap: 200}}
"""


@pytest.mark.parametrize(
    ("cls", "params", "timeout", "memory", "kind", "needle"),
    [
        ("Raise", "{}", "60s", 2048, "exception", "deliberate"),
        ("Hang", "{}", "2s", 2048, "timeout", "2"),
        ("Segfault", "{}", "60s", 2048, "crash", "SIGSEGV"),
        ("EatMemory", "{megabytes: 3000}", "60s", 700, "memory", "700"),
    ],
)
@pytest.mark.slow
def test_a_bad_trial_fails_with_its_reason_and_the_factory_goes_on(
    cli, tmp_path, cls, params, timeout, memory, kind, needle
):
    (tmp_path / "factory.yaml").write_text(FAULTY.format(cls=cls, params=params, timeout=timeout, memory=memory))
    result = cli.json("run", "factory.yaml", timeout=240)
    trials = cli.json("trials")
    broken = [t for t in trials if t["trainer"] == "broken"]
    good = [t for t in trials if t["trainer"] == "logistic_regression"]
    assert broken and good, "the random proposer should have picked both trainers"
    assert all(t["state"] == "failed" and t["failure_kind"] == kind for t in broken), broken
    assert all(needle in (t["error"] or "") for t in broken), [t["error"] for t in broken]
    assert all(t["state"] == "completed" for t in good)
    assert result["trials"]["failed"] == len(broken)
    assert result["champion"]["trainer"] == "logistic_regression"
    if kind == "crash":
        assert all(t["attempt"] >= 1 for t in broken)


@pytest.mark.slow
def test_wall_time_budget_stops_running_trials_and_finishes_cleanly(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(FAULTY.format(cls="Hang", params="{}", timeout="600s", memory=2048))
    t0 = time.monotonic()
    result = cli.json("run", "factory.yaml", "--time", "6s", "--trials", "50", timeout=120)
    assert time.monotonic() - t0 < 90
    assert "wall-time budget" in result["stopped_because"]
    trials = cli.json("trials")
    assert any(t["state"] == "cancelled" for t in trials)
    assert not any(t["state"] in ("running", "queued") for t in trials)
    assert cli.json("status")["campaigns"][0]["status"] == "finished"
