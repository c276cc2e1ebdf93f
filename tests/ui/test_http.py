"""The console over HTTP: every page answers, everything hostile is escaped, and nobody acts without the
admin token and the form's CSRF token."""

from __future__ import annotations

import time

import httpx
import pytest

from darkfab.store import Store

from ..helpers.sqlite import sqlite_db
from .conftest import TOKEN, ConsoleSite, OpenClient, logged_in


def pages(site: ConsoleSite) -> list[str]:
    return [
        "/",
        f"/campaigns/{site.campaign_id}",
        f"/campaigns/{site.campaign_id}?sort=number&order=asc&size=25&page=1",
        f"/campaigns/{site.hostile_campaign}",
        f"/trials/{site.hostile_trial}",
        f"/trials/{site.code_trial}",
        f"/factories/{site.factory}/versions/1",
        f"/factories/{site.factory}/monitor",
        "/timeline",
        f"/timeline?factory={site.factory}&kind=alias_set,registered&limit=100",
        "/login",
    ]


def champion_and_other(site: ConsoleSite) -> tuple[int, int]:
    with Store(site.store_url) as st:
        f = st.get_factory(site.factory)
        champion = st.aliases(f.id)["champion"]
        other = next(v.version for v in st.list_model_versions(f.id) if v.version != champion)
    return champion, other


def test_every_page_answers_with_html_and_security_headers(console_site: ConsoleSite) -> None:
    for path in pages(console_site):
        r = httpx.get(console_site.url + path, timeout=30)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert "<script>" not in r.text, path  # pages load scripts by src only; nothing inline


def test_hostile_text_is_shown_escaped_never_as_markup(console_site: ConsoleSite) -> None:
    for path in (
        f"/trials/{console_site.hostile_trial}",
        f"/trials/{console_site.code_trial}",
        "/timeline",
    ):
        html = httpx.get(console_site.url + path, timeout=30).text
        assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html, path
        assert "<script>window" not in html and "<img src=x" not in html, path
    html = httpx.get(f"{console_site.url}/campaigns/{console_site.hostile_campaign}", timeout=30).text
    assert "<script>window" not in html and "<img src=x" not in html
    assert html.count('<span class="param">code edit</span>') == 1  # the code-edit trial, flagged by its patch
    code = httpx.get(f"{console_site.url}/trials/{console_site.code_trial}", timeout=30).text
    assert '<span class="add">+model = Ridge(alpha=0.5)' in code  # the diff, highlighted
    assert "_patch" not in code and "_diff" not in code  # the edit is shown as the diff, never as a param
    assert "fake-model" in code and "improve this script" in code  # the LLM call behind it
    assert "latency_p95_ms 80 &gt; 50" in code  # the constraint violation


def test_unknown_records_are_404_pages_that_say_what_is_missing(console_site: ConsoleSite) -> None:
    r = httpx.get(f"{console_site.url}/trials/999999", timeout=30)
    assert r.status_code == 404 and "no trial with id 999999" in r.text
    r = httpx.get(f"{console_site.url}/factories/nope/versions/1", timeout=30)
    assert r.status_code == 404 and "nope" in r.text
    r = httpx.get(f"{console_site.url}/timeline?factory=%3Cb%3Enope", timeout=30)
    assert r.status_code == 404 and "&lt;b&gt;nope" in r.text and "iris_console" in r.text


def test_model_card_downloads_as_markdown(console_site: ConsoleSite) -> None:
    r = httpx.get(f"{console_site.url}/factories/{console_site.factory}/versions/1/card.md", timeout=30)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/markdown")
    assert "attachment" in r.headers["content-disposition"]
    assert r.text.startswith("# Model card: iris_console version 1")
    assert "## Sealed-test figures" in r.text and "95% interval" in r.text and "scikit-learn" in r.text


def test_plotly_is_served_from_the_installed_package(console_site: ConsoleSite) -> None:
    r = httpx.get(f"{console_site.url}/static/plotly.min.js", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert len(r.content) > 1_000_000 and b"plotly" in r.content[:2000].lower()
    assert httpx.get(f"{console_site.url}/static/..%2Fpyproject.toml", timeout=30).status_code == 404


@pytest.mark.parametrize("how", ["no session", "no csrf", "wrong csrf", "other session's csrf"])
def test_a_request_without_the_token_and_csrf_cannot_act(
    console_site: ConsoleSite, clients: OpenClient, how: str
) -> None:
    champion, other = champion_and_other(console_site)
    form = {"version": str(other), "reason": "attack"}
    client = clients(console_site.url)
    if how == "no csrf":
        client, _ = logged_in(clients, console_site)
    elif how == "wrong csrf":
        client, csrf = logged_in(clients, console_site)
        form["csrf"] = csrf[:-2] + "xx"
    elif how == "other session's csrf":
        _, csrf = logged_in(clients, console_site, "mallory")
        client, _ = logged_in(clients, console_site, "ada")
        form["csrf"] = csrf
    else:
        form["csrf"] = "guessed"
    r = client.post(f"/factories/{console_site.factory}/rollback", data=form)
    assert r.status_code == 403, r.text
    assert champion_and_other(console_site)[0] == champion  # nothing moved


def test_a_wrong_token_does_not_log_in(console_site: ConsoleSite, clients: OpenClient) -> None:
    client = clients(console_site.url)
    r = client.post("/login", data={"person": "mallory", "token": TOKEN + "x"})
    assert r.status_code == 403 and "That token is wrong" in r.text
    assert not client.cookies
    r = client.post("/login", content=b'{"person": "m", "token": "x"}', headers={"content-type": "application/json"})
    assert r.status_code == 415


def test_login_sets_a_strict_httponly_cookie(console_site: ConsoleSite) -> None:
    r = httpx.post(f"{console_site.url}/login", data={"person": "ada", "token": TOKEN}, timeout=30)
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_rollback_moves_the_champion_and_records_who_and_why(console_site: ConsoleSite, clients: OpenClient) -> None:
    champion, other = champion_and_other(console_site)
    client, csrf = logged_in(clients, console_site, "grace")
    form = {"csrf": csrf, "version": str(other), "reason": "live accuracy fell after the promotion"}
    r = client.post(f"/factories/{console_site.factory}/rollback", data=form)
    assert r.status_code == 303, r.text
    assert champion_and_other(console_site)[0] == other
    with Store(console_site.store_url) as st:
        event = st.list_events(kinds=("alias_set",), limit=1)[-1]
    assert event.data == {"alias": "champion", "version": other, "previous": champion}
    assert "grace" in event.reason and "live accuracy fell after the promotion" in event.reason
    # a reason is required, and an unknown version is refused with the known ones listed
    r = client.post(f"/factories/{console_site.factory}/rollback", data={**form, "reason": "  "})
    assert r.status_code == 400 and "reason" in r.text
    r = client.post(f"/factories/{console_site.factory}/rollback", data={**form, "version": "99"})
    assert r.status_code == 400 and "no version 99" in r.text


def test_the_campaign_page_follows_a_running_campaign(console_site: ConsoleSite) -> None:
    """The console keeps a campaign's trials between requests; a new or finished trial must still show."""
    with Store(console_site.store_url) as st:
        f = st.get_factory(console_site.factory)
        c = st.create_campaign(f.id, budget={"trials": 3}, trigger="manual", seed=2, data_fingerprint="x")
        first = st.add_trial(c.id, proposer="random", trainer="logistic_regression", params={"C": 1.0}, reason="r")
    page = f"{console_site.url}/campaigns/{c.id}?sort=number&order=asc"
    html = httpx.get(page, timeout=30).text
    done = '<span class="state completed">completed</span>'
    assert f'href="/trials/{first.id}"' in html and '<span class="state queued">queued</span>' in html
    assert done not in html
    with Store(console_site.store_url) as st:
        st.start_trial(first.id, worker="w")
        st.finish_trial(first.id, state="completed", value=0.8125, reward=0.8125, feasible=True, metrics={"a": 1})
        second = st.add_trial(c.id, proposer="tpe", trainer="random_forest", params={"n_estimators": 7}, reason="r")
    html = httpx.get(page, timeout=30).text
    assert done in html and "0.8125" in html and f'href="/trials/{second.id}"' in html and "2 trials" in html
    with Store(console_site.store_url) as st:
        st.finish_campaign(c.id, status="stopped", summary={}, reason="test over")


def test_the_timeline_shows_whether_the_audit_chain_verifies(console_site: ConsoleSite) -> None:
    def chain_line() -> str:
        deadline = time.monotonic() + 30
        while True:
            html = httpx.get(f"{console_site.url}/timeline", timeout=30).text
            line = html[html.index('id="chain"') :].split("</p>")[0]
            if "first check is running" not in line or time.monotonic() > deadline:
                return line
            time.sleep(0.2)

    assert "audit chain: verifies" in chain_line()
    db = console_site.store_url.removeprefix("sqlite:///")
    with sqlite_db(db) as conn:
        (original,) = conn.execute("SELECT reason FROM events WHERE id = 3").fetchone()
        conn.execute("UPDATE events SET reason = 'rewritten history' WHERE id = 3")
    try:
        with Store(console_site.store_url) as st:  # a new event: the console checks the chain again
            st.append_event(kind="note", reason="after the edit")
        deadline = time.monotonic() + 30
        while "BROKEN" not in (line := chain_line()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "BROKEN" in line and "3" in line
    finally:
        with sqlite_db(db) as conn:
            conn.execute("UPDATE events SET reason = ? WHERE id = 3", (original,))


def test_the_campaign_charts_come_as_one_json_document(console_site: ConsoleSite) -> None:
    r = httpx.get(f"{console_site.url}/campaigns/{console_site.campaign_id}/charts.json", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    charts = r.json()
    assert set(charts) == {"history", "importance", "parallel", "pareto"}
    parallel = charts["parallel"]
    assert parallel["layout"]["meta"]["axes"][-1] == "reward"
    assert parallel["data"] and all(t["type"] == "scatter" for t in parallel["data"])  # SVG: no WebGL needed
    names = charts["importance"]["data"][0]["y"]
    assert names and all(isinstance(n, str) for n in names)
    assert "latency_p95_ms" in charts["pareto"]["layout"]["title"]["text"]
    html = httpx.get(f"{console_site.url}/campaigns/{console_site.campaign_id}", timeout=30).text
    assert "epsilon squared" in html and 'id="pareto"' in html
    # the small second campaign (one completed trial, one failed) draws too
    r = httpx.get(f"{console_site.url}/campaigns/{console_site.hostile_campaign}/charts.json", timeout=30)
    assert r.status_code == 200 and "history" in r.json()


def test_the_version_page_draws_its_lineage_as_a_graph(console_site: ConsoleSite) -> None:
    html = httpx.get(f"{console_site.url}/factories/{console_site.factory}/versions/1", timeout=30).text
    graph = html[html.index('<svg id="lineage-graph"') : html.index("</svg>")]
    for kind in ("data", "proposal", "trial", "gate", "registered", "alias"):
        assert f'class="node {kind}"' in graph, kind
    assert graph.count('class="edge"') == graph.count('class="node ') - 1  # one chain, every box joined
    assert "[" in graph and "]" in graph  # the gate box shows the sealed-test interval
