"""The console over a PostgreSQL store: the same pages, read through the same public Store API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from darkfab.store import Store

from .conftest import console_env, serve_console

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
