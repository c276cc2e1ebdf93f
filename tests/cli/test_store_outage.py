"""A store that goes away in the middle of a campaign: another process holds SQLite's write lock for ~6 s.
The campaign waits with backoff, says so, and goes on: every trial finished exactly once, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from ..helpers.sqlite import sqlite_db

FACTORY = """\
name: outage
data: {source: "sklearn:breast_cancer", target: target}
trainers:
  - name: random_forest
    space: {n_estimators: {low: 60, high: 120}, max_depth: {low: 3, high: 8}}
search: {proposer: random}
budget: {trials: 10}
execution: {workers: 1, trial_timeout: 120s, latency_rows: 2}
gate: {bootstrap: 100}
"""

LOCKER = """\
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.execute("COMMIT")
"""


def _completed(db) -> int:
    try:
        with sqlite_db(db, timeout=1) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'completed'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_a_campaign_waits_out_a_locked_sqlite_store_and_loses_nothing(cli, tmp_path):
    (tmp_path / "factory.yaml").write_text(FACTORY)
    proc = cli.popen("run", "factory.yaml", "--json")
    db = tmp_path / ".darkfab" / "darkfab.db"
    deadline = time.monotonic() + 240
    while _completed(db) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "the campaign ended before the lock could be taken"
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db), "6"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
    out, err = proc.communicate(timeout=400)
    locker.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "database is locked" in err and "waiting" in err and "is back after" in err, err
    assert "Traceback" not in err
    result = json.loads(out)
    assert result["trials"]["completed"] == 10
    with sqlite_db(db) as con:
        rows = con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
        finished = con.execute("SELECT count(*) FROM events WHERE kind = 'completed'").fetchone()[0]
    assert [n for n, _ in rows] == list(range(1, 11)) and {s for _, s in rows} == {"completed"}
    assert finished == 10  # each trial finished exactly once
