"""`darkfab run` with the llm proposer against a fake endpoint on loopback: the LLM budget is hard across a kill
in the middle of a request, and a campaign the budget stopped says so (summary, --json, the event log)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ..helpers.fake_llm import FakeLLM, ok, proposals_text, slow
from ..helpers.sqlite import sqlite_db
from .conftest import reap

FACTORY = """\
name: budgeted
data: {{source: "sklearn:breast_cancer", target: target}}
trainers:
  - name: logistic_regression
    space: {{C: {{low: 0.001, high: 100.0, log: true}}}}
search:
  proposer: llm
  llm: {{base_url: "{url}", model: fake-model, timeout: 120s, retries: 0, max_repairs: 0,
        max_tokens: {max_tokens}, max_tokens_total: {total}}}
budget: {{trials: 6}}
execution: {{workers: 1, trial_timeout: 60s, latency_rows: 2}}
gate: {{bootstrap: 100}}
"""


def _good(body: object) -> object:
    picks = [{"trainer": "logistic_regression", "params": {"C": c}, "reason": "fake"} for c in (0.5, 2.0)]
    return ok(proposals_text(picks), usage={"prompt_tokens": 900, "completion_tokens": 200})


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite_db(db) as con:
        return con.execute(sql).fetchall()


@pytest.mark.slow
def test_a_request_killed_in_flight_stays_counted_and_the_stop_reason_names_the_budget(cli, tmp_path):
    with FakeLLM() as llm:
        llm.script(slow(300))  # the first request hangs; the process is killed meanwhile
        llm.responder = _good
        (tmp_path / "factory.yaml").write_text(FACTORY.format(url=llm.base_url, max_tokens=100000, total=20000))
        proc = cli.popen("run", "factory.yaml", "--json")
        deadline = time.monotonic() + 240
        while llm.count == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert llm.count == 1, proc.communicate(timeout=5) if proc.poll() is not None else "no request came"
        proc.kill()
        reap(proc)
        db = tmp_path / ".darkfab" / "darkfab.db"
        # sent, not answered: counted at its prompt and max_tokens (lowered to what the budget could pay)
        assert _rows(db, "SELECT status, prompt_tokens + completion_tokens FROM llm_calls") == [("reserved", 20000)]
        resumed = cli.json("run", "factory.yaml")
        assert resumed["resumed"] is True
        assert resumed["stopped_because"].startswith("LLM token budget reached"), resumed["stopped_because"]
        assert llm.count == 1  # the resumed campaign could not pay for another request, so sent none
        reasons = [r[0] for r in _rows(db, "SELECT reason FROM events WHERE reason LIKE 'campaign finished%'")]
        assert any("LLM token budget reached" in r for r in reasons), reasons


def test_the_summary_names_the_budget_that_stopped_the_llm(cli, tmp_path):
    with FakeLLM(responder=_good) as llm:
        (tmp_path / "factory.yaml").write_text(FACTORY.format(url=llm.base_url, max_tokens=300, total=1500))
        proc = cli("run", "factory.yaml")
        assert "LLM token budget reached" in proc.stdout and "nothing more to propose" not in proc.stdout
        assert llm.count == 1
    assert "Traceback" not in proc.stderr
