"""The console's preference questions over HTTP, on the real campaign's store: the page shows the pair
`darkfab compare` would ask, a logged-in person's answer is recorded as their preference (read back through
the runtime's API and the event log) and the next pair is asked; nobody answers without the session and its
CSRF token, and bad input is a 400 naming the field, with nothing recorded."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from darkfab.runtime import Factory, comparisons, next_pair, stored_spec
from darkfab.store import Store

from .conftest import HOSTILE, ConsoleSite, OpenClient, logged_in

PAIR = re.compile(r'id="pair" data-a="(\d+)" data-b="(\d+)"')
PERSON_COUNT = re.compile(r'id="count-person">(\d+)<')


def _page(site: ConsoleSite) -> str:
    return f"/factories/{site.factory}/compare"


def _prefs(site: ConsoleSite) -> int:
    with Store(site.store_url) as st:
        return len(st.list_preferences(st.get_factory(site.factory).id))


def _pair(html: str) -> tuple[int, int]:
    match = PAIR.search(html)
    assert match, html
    return int(match.group(1)), int(match.group(2))


def test_the_page_shows_the_pair_darkfab_compare_asks(console_site: ConsoleSite) -> None:
    home = httpx.get(console_site.url + "/", timeout=60).text
    assert f'href="{_page(console_site)}"' in home
    r = httpx.get(console_site.url + _page(console_site), timeout=60)
    assert r.status_code == 200, r.text
    with Store(console_site.store_url) as st:
        pair = next_pair(Factory(stored_spec(st, console_site.factory), store=st))
    assert pair is not None
    assert _pair(r.text) == (pair[0].id, pair[1].id)
    for part in ('id="card-a"', 'id="card-b"', "Reward terms", "Metrics", "Params", "log in"):
        assert part.lower() in r.text.lower(), part
    assert 'id="answer"' not in r.text  # reading needs no login; answering does
    skipped = httpx.get(
        console_site.url + _page(console_site), params={"skip": f"{pair[0].id}-{pair[1].id}"}, timeout=60
    )
    assert skipped.status_code == 200 and _pair(skipped.text) != (pair[0].id, pair[1].id)


def test_an_answer_is_recorded_as_the_persons_preference_and_the_next_pair_is_asked(
    console_site: ConsoleSite, clients: OpenClient
) -> None:
    client, csrf = logged_in(clients, console_site, "grace")
    page = client.get(_page(console_site)).text
    a, b = _pair(page)
    before = int(PERSON_COUNT.search(page).group(1))  # type: ignore[union-attr]
    r = client.post(
        _page(console_site),
        data={"csrf": csrf, "trial_a": str(a), "trial_b": str(b), "winner": "b", "reason": " the smaller  model "},
    )
    assert r.status_code == 303 and r.headers["location"] == _page(console_site)
    after = client.get(_page(console_site)).text
    assert int(PERSON_COUNT.search(after).group(1)) == before + 1  # type: ignore[union-attr]
    assert PAIR.search(after) is None or _pair(after) not in ((a, b), (b, a))
    with Store(console_site.store_url) as st:
        fid = st.get_factory(console_site.factory).id
        last = st.list_preferences(fid)[-1]
        comps, by_source = comparisons(st, fid)
        event = st.list_events(factory_id=fid, kinds=("preference_recorded",))[-1]
    assert (last.trial_a, last.trial_b, last.winner) == (a, b, "b")
    assert last.source == "person:grace" and last.rationale == "the smaller model"
    assert by_source.get("person", 0) >= 1 and comps[-1].winner == "b"
    assert (
        event.data["preference"] == last.id and "person:grace" in event.reason and "the smaller model" in event.reason
    )


@pytest.mark.parametrize("how", ["no session", "no csrf", "wrong csrf"])
def test_no_one_answers_without_the_session_and_its_csrf_token(
    console_site: ConsoleSite, clients: OpenClient, how: str
) -> None:
    if how == "no session":
        client, csrf = clients(console_site.url), "x" * 43
    else:
        client, csrf = logged_in(clients, console_site, "grace")
    a, b = _pair(client.get(_page(console_site)).text)
    data = {"trial_a": str(a), "trial_b": str(b), "winner": "a", "reason": "sneaky"}
    if how != "no csrf":
        data["csrf"] = csrf[::-1]
    before = _prefs(console_site)
    r = client.post(_page(console_site), data=data)
    assert r.status_code == 403, r.text
    assert _prefs(console_site) == before


def test_bad_answers_are_a_400_naming_the_field(console_site: ConsoleSite, clients: OpenClient) -> None:
    client, csrf = logged_in(clients, console_site, "grace")
    a, b = _pair(client.get(_page(console_site)).text)
    good = {"csrf": csrf, "trial_a": str(a), "trial_b": str(b), "winner": "a", "reason": "x"}
    cases = [
        ({"winner": "c"}, "winner must be one of a, b, tie"),
        ({"winner": ""}, "winner must be one of a, b, tie"),
        ({"trial_a": "one"}, "trial_a must be a trial id"),
        ({"trial_b": "999999"}, "trial_b: trial 999999 is not a completed, evaluated trial of factory"),
        ({"trial_a": str(console_site.hostile_trial)}, f"trial_a: trial {console_site.hostile_trial} is not"),
        ({"trial_b": str(a)}, f"trial_a and trial_b are both trial {a}"),
        ({"reason": "y" * 501}, "the reason is 501 characters long"),
    ]
    before = _prefs(console_site)
    for change, message in cases:
        r = client.post(_page(console_site), data={**good, **change})
        assert r.status_code == 400, (change, r.status_code, r.text)
        assert message in r.text, (change, r.text)
    assert client.get(f"/factories/{console_site.factory}x/compare").status_code == 404
    assert _prefs(console_site) == before


def test_a_hostile_reason_is_kept_and_shown_as_text(console_site: ConsoleSite, clients: OpenClient) -> None:
    client, csrf = logged_in(clients, console_site, "grace")
    a, b = _pair(client.get(_page(console_site)).text)
    data = {"csrf": csrf, "trial_a": str(a), "trial_b": str(b), "winner": "tie", "reason": HOSTILE}
    assert client.post(_page(console_site), data=data).status_code == 303
    page = client.get(_page(console_site)).text
    assert HOSTILE not in page and html.escape(HOSTILE, quote=False).split('"')[0] in page
    with Store(console_site.store_url) as st:
        last = st.list_preferences(st.get_factory(console_site.factory).id)[-1]
    assert (last.winner, last.rationale) == ("tie", HOSTILE)
