"""A PostgreSQL connection cut in the middle of a write (issue 14): the unit of work is rolled back and run again
from the start, with backoff, and said so; a COMMIT whose answer was lost is not run twice; past the outage wait
the store gives up with StoreUnavailable and keeps nothing of the work.

The cuts are real: ``pg_terminate_backend`` from another session while the write waits on a row lock between two
of its statements, or a TCP proxy in front of the shared server that cuts the connection at a chosen statement.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from darkfab.errors import StoreUnavailable
from darkfab.store import Store

from ..helpers.tcp_proxy import TcpProxy


def _campaign(store: Store) -> int:
    factory = store.ensure_factory("cut", {"name": "cut", "data": {"source": "sklearn:iris"}})
    campaign = store.create_campaign(factory.id, budget={"trials": 5}, trigger="first", seed=1, data_fingerprint="x")
    store.add_trial(campaign.id, proposer="random", trainer="rf", params={"n": 1}, reason="before")
    return campaign.id


def _counts(url: str) -> dict[str, int]:
    """Rows written, read straight from the server: proposals, trials and ``proposed`` events."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {
                "proposals": conn.execute(sa.text("SELECT count(*) FROM proposals")).scalar_one(),
                "trials": conn.execute(sa.text("SELECT count(*) FROM trials")).scalar_one(),
                "proposed": conn.execute(sa.text("SELECT count(*) FROM events WHERE kind = 'proposed'")).scalar_one(),
            }
    finally:
        engine.dispose()


@pytest.fixture
def proxied(pg_clean_url: str) -> Iterator[tuple[TcpProxy, str]]:
    url = sa.make_url(pg_clean_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def _blocked_backend(admin: sa.Engine, database: str, holder_pid: int) -> Any:
    """The store's backend once it waits on the holder's row lock, in the middle of its transaction."""
    query = sa.text(
        "SELECT pid, query FROM pg_stat_activity WHERE datname = :db AND pid <> :holder AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with admin.connect() as conn:
            row = conn.execute(query, {"db": database, "holder": holder_pid}).first()
        if row is not None:
            return row
        time.sleep(0.02)
    pytest.fail("the write never waited on the row lock")


@pytest.mark.postgres
def test_a_backend_terminated_between_two_statements_is_run_again_whole(
    pg_clean_url: str, pg_admin: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    database = sa.make_url(pg_clean_url).database
    holder = sa.create_engine(pg_clean_url, poolclass=sa.pool.NullPool)
    outcome: dict[str, Any] = {}
    with Store(pg_clean_url) as store:
        campaign_id = _campaign(store)

        def add() -> None:
            try:
                outcome["trial"] = store.add_trial(
                    campaign_id, proposer="random", trainer="rf", params={"n": 2}, reason="during"
                )
            except Exception as err:  # reported by the assertions below
                outcome["error"] = err

        with holder.connect() as lock, caplog.at_level(logging.WARNING, logger="darkfab.store"):
            # the campaign's row locked FOR UPDATE: the write's foreign-key check waits on it, mid-transaction
            lock.execute(sa.text("SELECT id FROM campaigns WHERE id = :id FOR UPDATE"), {"id": campaign_id})
            holder_pid = lock.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            writer = threading.Thread(target=add)
            writer.start()
            blocked = _blocked_backend(pg_admin, str(database), holder_pid)
            with pg_admin.connect() as admin:
                assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": blocked.pid}).scalar()
            lock.rollback()
            writer.join(timeout=120)
        trials = store.list_trials(campaign_id=campaign_id)
        verified = store.verify_chain()
    holder.dispose()
    assert "error" not in outcome, outcome
    assert blocked.query.lstrip().upper().startswith("INSERT"), blocked.query  # cut after statements had run
    assert outcome["trial"].number == 2
    assert [(t.number, t.reason) for t in trials] == [(1, "before"), (2, "during")]  # once each, nothing lost
    assert _counts(pg_clean_url) == {"proposals": 2, "trials": 2, "proposed": 2}  # the cut attempt left nothing
    assert verified.ok, verified.message
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "cut" in messages and "doing it again from the start" in messages and "is back after" in messages, messages


@pytest.mark.postgres
def test_a_commit_whose_answer_is_lost_is_not_run_twice(
    proxied: tuple[TcpProxy, str], pg_clean_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = proxied
    with Store(url) as store:
        campaign_id = _campaign(store)
        proxy.cut_at(b"COMMIT", forward=True)  # the server commits; the store never hears it did
        with caplog.at_level(logging.WARNING, logger="darkfab.store"):
            trial = store.add_trial(campaign_id, proposer="random", trainer="rf", params={"n": 2}, reason="during")
        trials = store.list_trials(campaign_id=campaign_id)
        verified = store.verify_chain()
    assert proxy.cuts == 1
    assert trial.number == 2
    assert [(t.number, t.reason) for t in trials] == [(1, "before"), (2, "during")]  # kept once, not run again
    assert _counts(pg_clean_url) == {"proposals": 2, "trials": 2, "proposed": 2}
    assert verified.ok, verified.message
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "was kept" in messages, messages


@pytest.mark.postgres
def test_a_statement_cut_before_the_server_ran_it_is_run_again(
    proxied: tuple[TcpProxy, str], pg_clean_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    proxy, url = proxied
    with Store(url) as store:
        campaign_id = _campaign(store)
        proxy.cut_at(b"INSERT INTO trials", forward=False, times=2)  # twice: the first re-run is cut too
        with caplog.at_level(logging.WARNING, logger="darkfab.store"):
            trial = store.add_trial(campaign_id, proposer="random", trainer="rf", params={"n": 2}, reason="during")
        trials = store.list_trials(campaign_id=campaign_id)
    assert proxy.cuts == 2
    assert trial.number == 2
    assert [(t.number, t.reason) for t in trials] == [(1, "before"), (2, "during")]
    assert _counts(pg_clean_url) == {"proposals": 2, "trials": 2, "proposed": 2}  # a cut attempt's are gone
    messages = [r.getMessage() for r in caplog.records]
    assert sum("doing it again from the start" in m for m in messages) == 2, messages


@pytest.mark.postgres
def test_cuts_past_the_outage_wait_give_up_with_store_unavailable_and_keep_nothing(
    proxied: tuple[TcpProxy, str], pg_clean_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("darkfab.store._base.OUTAGE_WAIT_S", 1.0)
    proxy, url = proxied
    with Store(url) as store:
        campaign_id = _campaign(store)
        proxy.cut_at(b"INSERT INTO trials", forward=False, times=1000)  # every attempt is cut
        with pytest.raises(StoreUnavailable, match=r"cannot add a trial in the store at .*fix: check"):
            store.add_trial(campaign_id, proposer="random", trainer="rf", params={"n": 2}, reason="during")
    assert proxy.cuts >= 2  # it tried again before giving up
    assert _counts(pg_clean_url) == {"proposals": 1, "trials": 1, "proposed": 1}  # nothing of it was kept
