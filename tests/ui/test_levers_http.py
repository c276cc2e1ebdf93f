"""The console's approval and pause levers over HTTP, on a store whose gate winner waits as ``pending``
(``gate.approval: required``): nobody acts without the admin token and the form's CSRF token, nor without
a reason, and a refused request changes nothing."""

from __future__ import annotations

import pytest

from darkfab.store import Pauses, Store

from .conftest import GATED_NAME as NAME
from .conftest import GatedSite, OpenClient, logged_in


def _state(site: GatedSite) -> tuple[dict[str, int], bool]:
    with Store(site.store_url) as st:
        fid = st.get_factory(NAME).id
        return st.aliases(fid), Pauses(st).state(fid) is not None


@pytest.mark.parametrize("path", [f"/factories/{NAME}/versions/1/approve", f"/factories/{NAME}/pause"])
@pytest.mark.parametrize("how", ["no session", "no csrf", "wrong csrf"])
def test_no_one_acts_without_the_token_and_the_csrf_token(
    gated: GatedSite, clients: OpenClient, path: str, how: str
) -> None:
    before = _state(gated)
    if how == "no session":
        client, csrf = clients(gated.url), ""
    else:
        client, csrf = logged_in(clients, gated)
    data = {"reason": "sneaky"}
    if how == "wrong csrf":
        data["csrf"] = csrf[::-1]
    r = client.post(path, data=data)
    assert r.status_code == 403, r.text
    assert _state(gated) == before == ({"pending": 1}, False)


def test_an_approval_without_a_reason_is_refused(gated: GatedSite, clients: OpenClient) -> None:
    client, csrf = logged_in(clients, gated)
    r = client.post(f"/factories/{NAME}/versions/1/approve", data={"csrf": csrf, "reason": "  "})
    assert r.status_code == 400 and "the reason is required" in r.text
    r = client.post(f"/factories/{NAME}/versions/9/approve", data={"csrf": csrf, "reason": "x"})
    assert r.status_code == 404 and "no version 9" in r.text
    assert _state(gated) == ({"pending": 1}, False)
