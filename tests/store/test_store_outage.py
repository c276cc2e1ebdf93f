"""PostgreSQL unreachable for a few seconds between two writes (a paused TCP proxy in front of the shared
server, which keeps running): the store waits with backoff, says so, and the write lands exactly once."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import sqlalchemy as sa

from darkfab.store import Store

from ..helpers.tcp_proxy import TcpProxy


@pytest.mark.postgres
def test_a_write_waits_out_postgresql_being_unreachable(pg_clean_url: str, caplog: pytest.LogCaptureFixture) -> None:
    url = sa.make_url(pg_clean_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with Store(proxied) as store:
            factory = store.ensure_factory("outage", {"name": "outage", "data": {"source": "sklearn:iris"}})
            campaign = store.create_campaign(
                factory.id, budget={"trials": 5}, trigger="first", seed=1, data_fingerprint="sha256:x"
            )
            store.add_trial(campaign.id, proposer="random", trainer="rf", params={"n": 1}, reason="before")
            proxy.pause()
            threading.Timer(3.0, proxy.resume).start()
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="darkfab.store"):
                store.add_trial(campaign.id, proposer="random", trainer="rf", params={"n": 2}, reason="during")
                trials = store.list_trials(campaign_id=campaign.id)
            waited = time.monotonic() - started
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "cannot" in messages and "waiting" in messages and "is back after" in messages, messages
    assert waited > 0  # it returned: the outage was waited out, not raised
    assert [(t.number, t.reason) for t in trials] == [(1, "before"), (2, "during")]  # once each, nothing lost


@pytest.mark.postgres
def test_a_missing_database_is_not_waited_for() -> None:
    # only outages in the middle of work are waited out: a store that cannot be opened still fails at once
    from darkfab.errors import StoreError

    started = time.monotonic()
    with pytest.raises(StoreError, match="no_such_db_for_darkfab"):
        Store("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_db_for_darkfab")
    assert time.monotonic() - started < 60
