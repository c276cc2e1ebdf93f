"""PostgreSQL connections cut in the MIDDLE of writes during a real `darkfab run` (issue 14, store outages).

Another session, again and again, makes one of the campaign's write transactions wait (it holds the event chain's
advisory lock, or locks the campaign's row so that a trial's insert waits on its foreign key), terminates that
backend with ``pg_terminate_backend`` while the transaction is open, then every other backend of the database too.
The campaign re-runs each cut unit of work from the start, says so, and finishes: the budget exactly, every trial
recorded once, the champion registered once, the audit chain whole.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

TRIALS = 8
CUTS = 4
CHAIN_LOCK_KEY = 0x6461726B666162  # the advisory lock darkfab's chain writes take ("darkfab" in ASCII)

FACTORY = f"""\
name: cut_pg
data: {{source: "sklearn:breast_cancer", target: target}}
trainers:
  - name: logistic_regression
  - name: random_forest
    space: {{n_estimators: {{low: 10, high: 30}}, max_depth: {{low: 2, high: 5}}}}
search: {{proposer: random}}
budget: {{trials: {TRIALS}}}
execution: {{workers: 1, trial_timeout: 120s, latency_rows: 2}}
gate: {{bootstrap: 100}}
"""


def _count(engine: sa.Engine, sql: str) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(sql)).scalar_one())
    except sa.exc.ProgrammingError:  # the tables are not there yet
        return 0


class _Cutter(threading.Thread):
    """Cuts the campaign's open write transactions with pg_terminate_backend, ``CUTS`` times."""

    def __init__(self, admin: sa.Engine, direct: sa.Engine, database: str) -> None:
        super().__init__(daemon=True)
        self.admin, self.direct, self.database = admin, direct, database
        self.mid_transaction: list[str] = []  # the statement each cut transaction was waiting in
        self.stop = threading.Event()

    def run(self) -> None:
        while len(self.mid_transaction) < CUTS and not self.stop.is_set():
            with self.direct.connect() as holder:
                if len(self.mid_transaction) % 2 == 0:
                    holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": CHAIN_LOCK_KEY})
                else:
                    holder.execute(sa.text("SELECT id FROM campaigns FOR UPDATE"))
                pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
                cut = self._cut_a_waiting_backend(pid)
                self._terminate("pid <> :holder", pid)  # and the idle ones: the pool must notice them gone
                holder.execute(sa.text("SELECT pg_advisory_unlock_all()"))
                holder.rollback()
            if cut is not None:
                self.mid_transaction.append(cut)
            self.stop.wait(1.0)

    def _cut_a_waiting_backend(self, holder_pid: int) -> str | None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stop.is_set():
            cut = self._terminate("pid <> :holder AND wait_event_type = 'Lock' AND xact_start IS NOT NULL", holder_pid)
            if cut:
                return cut[0]
            time.sleep(0.02)
        return None

    def _terminate(self, where: str, holder_pid: int) -> list[str]:
        # materialized first: the backends are chosen, then terminated, whatever order the planner prefers
        sql = (
            f"WITH chosen AS MATERIALIZED (SELECT pid, query FROM pg_stat_activity WHERE datname = :db AND {where}) "
            "SELECT query FROM chosen WHERE pg_terminate_backend(pid)"
        )
        with self.admin.connect() as conn:
            return [r.query for r in conn.execute(sa.text(sql), {"db": self.database, "holder": holder_pid})]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_campaign_goes_on_when_its_connections_are_cut_mid_transaction(
    cli, tmp_path: Path, pg_url: str, pg_admin: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "factory.yaml").write_text(FACTORY)
    monkeypatch.setenv("DARKFAB_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))  # this store's key, not ~/.darkfab's
    direct = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    cutter = _Cutter(pg_admin, direct, str(sa.make_url(pg_url).database))
    proc = cli.popen("run", "factory.yaml", "--json", "--store", pg_url)
    try:
        deadline = time.monotonic() + 240
        completed = "SELECT count(*) FROM trials WHERE state = 'completed'"
        while _count(direct, completed) < 1 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the campaign ended before the cuts could start"
        cutter.start()
        out, err = proc.communicate(timeout=400)
    finally:
        cutter.stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cutter.join(timeout=60)
    verify = cli("audit", "verify", "--json", "--store", pg_url, check=False)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert len(cutter.mid_transaction) >= 2, cutter.mid_transaction  # the attack landed, in open transactions
    assert "cut" in err and "doing it again from the start" in err, err  # it said so
    assert json.loads(out)["trials"]["completed"] == TRIALS
    with direct.connect() as conn:
        rows = conn.execute(sa.text("SELECT number, state FROM trials ORDER BY number")).all()
        kinds = dict(conn.execute(sa.text("SELECT kind, count(*) FROM events GROUP BY kind")).all())
        versions = conn.execute(sa.text("SELECT count(*) FROM model_versions")).scalar_one()
        proposals = conn.execute(sa.text("SELECT count(*) FROM proposals")).scalar_one()
    direct.dispose()
    assert [r.number for r in rows] == list(range(1, TRIALS + 1)), rows  # the budget exactly, no number twice
    assert {r.state for r in rows} == {"completed"}
    assert proposals == TRIALS
    assert kinds["proposed"] == TRIALS and kinds["completed"] == TRIALS  # each trial proposed and finished once
    assert versions == 1 and kinds["registered"] == 1  # the champion registered once
    assert kinds["campaign_finished"] == 1
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
