"""PostgreSQL unreachable for 20 s in the middle of a real `darkfab run` (issue 14, store outages).

The shared PostgreSQL server keeps running: the campaign reaches it through a TCP proxy that is paused (every
open connection cut, new ones refused) once some trials have finished, then resumed. The campaign waits with
backoff, says so, and goes on: exactly the budget of trials, none twice, none lost, the audit chain whole.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ..helpers.tcp_proxy import TcpProxy
from .conftest import reap

OUTAGE_S = 20.0
TRIALS = 10

FACTORY = f"""\
name: outage_pg
data: {{source: "sklearn:breast_cancer", target: target}}
trainers:
  - name: random_forest
    space: {{n_estimators: {{low: 60, high: 120}}, max_depth: {{low: 3, high: 8}}}}
search: {{proposer: random}}
budget: {{trials: {TRIALS}}}
execution: {{workers: 1, trial_timeout: 120s, latency_rows: 2}}
gate: {{bootstrap: 100}}
"""


def _finished(direct: sa.Engine) -> list[tuple[int, int]]:
    """(id, number) of the completed trials, read straight from the server (not through the proxy)."""
    try:
        with direct.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, number FROM trials WHERE state = 'completed' ORDER BY id"))
            return [(r.id, r.number) for r in rows]
    except sa.exc.ProgrammingError:  # the tables are not there yet
        return []


@pytest.mark.slow
@pytest.mark.postgres
def test_a_campaign_waits_out_postgresql_unreachable_for_20s(
    cli,
    tmp_path: Path,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "factory.yaml").write_text(FACTORY)
    url = sa.make_url(pg_url)
    monkeypatch.setenv("DARKFAB_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))  # this store's key, not ~/.darkfab's
    direct = sa.create_engine(pg_url, poolclass=sa.pool.NullPool)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        proc = cli.popen("run", "factory.yaml", "--json", "--store", proxied)
        try:
            deadline = time.monotonic() + 240
            while len(_finished(direct)) < 2 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is None, "the campaign ended before the outage could start"
            proxy.pause()
            before = _finished(direct)  # nothing more can finish while the store is out
            assert 2 <= len(before) < TRIALS
            time.sleep(OUTAGE_S)
            assert proc.poll() is None, "the campaign gave up during the outage"
            proxy.resume()
            out, err = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
                reap(proc, timeout=None)
        verify = cli("audit", "verify", "--json", "--store", proxied, check=False)
    assert proc.returncode == 0, err
    assert "cannot" in err and "waiting" in err and "is back after" in err, err  # it said so, both ways
    assert "Traceback" not in err
    assert json.loads(out)["trials"]["completed"] == TRIALS
    with direct.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, number, state FROM trials ORDER BY number")).all()
        finished = conn.execute(sa.text("SELECT count(*) FROM events WHERE kind = 'completed'")).scalar_one()
    direct.dispose()
    assert [r.number for r in rows] == list(range(1, TRIALS + 1)), rows  # the budget exactly, no number twice
    assert {r.state for r in rows} == {"completed"}
    assert set(before) <= {(r.id, r.number) for r in rows}  # every trial finished before the outage is still there
    assert finished == TRIALS  # each trial finished exactly once
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert json.loads(verify.stdout)["ok"] is True
