"""The console over a PostgreSQL store: the same pages, read through the same public Store API."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from darkfab.store import Store

from ..helpers.tcp_proxy import TcpProxy
from .conftest import GatedSite, OpenClient, console_env, logged_in, serve_console

pytestmark = pytest.mark.postgres


def test_every_page_answers_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    with Store(pg_url) as st:
        f = st.ensure_factory("pg_console", {"budget": {"trials": 3}})
        c = st.create_campaign(f.id, budget={"trials": 3}, trigger="first", seed=0, data_fingerprint="d")
        for i in range(3):
            t = st.add_trial(c.id, proposer="tpe", trainer="rf", params={"i": i}, reason="r", start_as="w")
            st.finish_trial(
                t.id,
                state="completed",
                value=0.5 + i / 10,
                reward=0.5 + i / 10,
                feasible=True,
                resources={"wall_seconds": 3.0 - i},
            )
        st.add_model_version(
            f.id,
            artifact_hash="a" * 64,
            artifact_path="sha256/aa/" + "a" * 64,
            trial_id=t.id,
            trainer="rf",
            params={"i": 2},
            metrics={"sealed_test": {"metric": "accuracy", "score": 0.7, "low": 0.6, "high": 0.8}},
            lineage={"campaign": 1},
            reason="test",
            aliases=("champion",),
        )
        st.finish_campaign(c.id, status="finished", summary={}, reason="done")
    with serve_console(pg_url, tmp_path, console_env(tmp_path)) as url:
        for path in (
            "/",
            f"/campaigns/{c.id}",
            f"/campaigns/{c.id}?sort=wall&order=asc",
            f"/campaigns/{c.id}?sort=reward&order=desc&size=25",
            f"/campaigns/{c.id}/charts.json",
            f"/trials/{t.id}",
            "/factories/pg_console/versions/1",
            "/factories/pg_console/monitor",
            "/timeline",
        ):
            r = httpx.get(url + path, timeout=30)
            assert r.status_code == 200, (path, r.text[:300])
        assert "0.7" in httpx.get(f"{url}/", timeout=30).text
        # the leaderboard sorted in SQL by a figure inside the resources JSON: the last trial ran shortest
        html = httpx.get(f"{url}/campaigns/{c.id}?sort=wall&order=asc", timeout=30).text
        rows = html[html.index('id="leaderboard"') :]
        assert rows.index(f'href="/trials/{t.id}"') < rows.index(f'href="/trials/{t.id - 2}"')


@contextmanager
def _console_behind_proxy(pg_url: str, tmp_path: Path, factory: str) -> Iterator[tuple[TcpProxy, str, str]]:
    """`darkfab ui` over the store at ``pg_url`` (holding ``factory``) through a TCP proxy that can be paused: the
    proxy, the console's address and the proxied store URL."""
    with Store(pg_url) as st:
        st.ensure_factory(factory, {"budget": {"trials": 3}})
    url = sa.make_url(pg_url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with serve_console(proxied, tmp_path, console_env(tmp_path)) as console:
            yield proxy, console, proxied


@pytest.mark.slow
def test_a_store_outage_gets_a_prompt_503_page_and_the_console_comes_back(pg_url: str, tmp_path: Path) -> None:
    """The store goes away under a running console (a paused TCP proxy: open connections cut, new ones refused).
    A page asked for meanwhile must not hang for the campaign's five-minute outage wait nor say "bad request": it
    answers 503 with the reason, the fix and a Retry-After, without a traceback; once the store is back, pages work
    again without restarting the console."""
    with _console_behind_proxy(pg_url, tmp_path, "pg_outage") as (proxy, console, _):
        assert httpx.get(f"{console}/", timeout=30).status_code == 200
        proxy.pause()
        # the timeout guards against a hang (the store's own wait is 300 s); it is not a claim about speed
        r = httpx.get(f"{console}/timeline", timeout=120)
        assert r.status_code == 503, (r.status_code, r.text[:500])
        assert "store" in r.text and "fix:" in r.text and "reachable" in r.text, r.text[:800]
        assert "Traceback" not in r.text
        assert int(r.headers["retry-after"]) > 0
        proxy.resume()
        back = httpx.get(f"{console}/timeline", timeout=60)
        assert back.status_code == 200, back.text[:500]
        assert "pg_outage" in httpx.get(f"{console}/", timeout=60).text


@pytest.mark.slow
@pytest.mark.parametrize("action", ["pause", "rollback", "compare"])
def test_an_action_in_a_store_outage_does_not_hold_up_other_pages(
    pg_url: str, tmp_path: Path, clients: OpenClient, action: str
) -> None:
    """A console action (pause, roll back, a preference) read and wrote the store on the server's event loop: in an
    outage every other request, a page that needs no store included, waited behind it. It must wait off the loop,
    then answer 503 like a page."""
    with _console_behind_proxy(pg_url, tmp_path, "pg_acts") as (proxy, console, proxied):
        client, csrf = logged_in(clients, GatedSite(console, proxied), "ada")
        form = {"csrf": csrf, "reason": "outage drill", "version": "1", "trial_a": "1", "trial_b": "2"}
        answers: list[httpx.Response] = []
        acting = threading.Thread(target=lambda: answers.append(client.post(f"/factories/pg_acts/{action}", data=form)))
        proxy.pause()
        acting.start()
        time.sleep(3.0)  # the action is in the console, waiting for the store (it waits 10 s)
        assert acting.is_alive(), answers[0].text[:300]
        assert httpx.get(f"{console}/login", timeout=60).status_code == 200  # answered meanwhile
        assert acting.is_alive(), "the action did not wait for the store"
        acting.join()
        r = answers[0]
        assert r.status_code == 503, (r.status_code, r.text[:500])
        assert "store" in r.text and "fix:" in r.text, r.text[:800]
        proxy.resume()
        assert httpx.get(f"{console}/", timeout=60).status_code == 200
