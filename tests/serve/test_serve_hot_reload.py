"""Alias moves made outside the server are picked up; swaps under concurrent load drop no request."""

from __future__ import annotations

from typing import Any

from darkfab.registry import Registry
from darkfab.serve import create_app
from darkfab.spec import DeploySpec
from darkfab.store import Store

from ..helpers.serving import raising, refitted
from . import contest
from .conftest import LiveServer, rows_frame


def _routed(server: LiveServer) -> dict[str, Any]:
    with server.client() as c:
        return c.get("/v1/routing").json()


def test_the_deploy_section_comes_from_the_stored_spec(fresh_store: Store) -> None:
    record = fresh_store.get_factory("kinds")
    spec = {**record.spec, "deploy": {**record.spec["deploy"], "mode": "canary", "share": 0.25, "min_requests": 500}}
    fresh_store.ensure_factory("kinds", spec)
    server = LiveServer(create_app(store=fresh_store, factory="kinds", poll_interval_s=0.2))
    try:
        routing = _routed(server)
        assert routing["mode"] == "canary" and routing["share"] == 0.25 and routing["min_requests"] == 500
        assert routing["challenger"]["version"] == 2
    finally:
        server.stop()
    override = LiveServer(create_app(store=fresh_store, factory="kinds", deploy=DeploySpec(mode="direct")))
    try:
        routing = _routed(override)
        assert routing["mode"] == "direct" and routing["challenger"] is None and routing["share"] == 0.0
    finally:
        override.stop()


def test_a_challenger_registered_elsewhere_is_picked_up(fresh_store: Store) -> None:
    Registry(fresh_store).delete_alias("kinds", "challenger", reason="start without a challenger")
    server = contest.start(fresh_store, DeploySpec(mode="canary", share=0.5, min_requests=100_000))
    try:
        assert _routed(server)["challenger"] is None
        with Store(fresh_store.url) as elsewhere:  # another connection, as a `darkfab run` process would hold
            v3 = contest.register_challenger(elsewhere, contest.champion_blob(elsewhere), "a new gate winner")
        contest.wait_for(lambda: (_routed(server)["challenger"] or {}).get("version") == v3, "the challenger to load")
        with server.client() as c:
            versions = {contest.predict(c, rec)["model_version"] for rec, _ in contest.labelled_records(40, seed=1)}
        assert versions == {1, v3}

        with Store(fresh_store.url) as elsewhere:
            Registry(elsewhere).set_alias("kinds", "champion", 2, reason="an operator elsewhere")
        contest.wait_for(lambda: _routed(server)["champion"]["version"] == 2, "the champion to move")
        with server.client() as c:
            versions = {contest.predict(c, rec)["model_version"] for rec, _ in contest.labelled_records(30, seed=2)}
        assert versions == {2, v3}
        assert b'darkfab_model_swaps_total{model="kinds"} 1.0' in server.service.metrics.render()
    finally:
        server.stop()


def test_no_request_fails_while_the_server_rolls_back_promotes_and_reloads(fresh_store: Store) -> None:
    registry = Registry(fresh_store)
    registry.delete_alias("kinds", "challenger", reason="start without a challenger")
    deploy = DeploySpec(mode="canary", share=0.5, min_requests=30, max_latency_ratio=50.0, max_quality_drop=0.2)
    server = contest.start(fresh_store, deploy)
    blob = contest.champion_blob(fresh_store)
    try:
        with contest.Traffic(server, clients=4, seed=12, label=True, x=10.0) as traffic:
            bad = contest.register_challenger(fresh_store, raising(blob, limit=3.0), "fails on big x")
            first = contest.next_decision(fresh_store, 0)
            good = contest.register_challenger(
                fresh_store, refitted(blob, rows_frame(), "kind", C=20.0), "a good refit"
            )
            second = contest.next_decision(fresh_store, 1)
            with server.admin() as admin:
                rolled = admin.post("/admin/rollback", json={"reason": "operator check"})
                promoted = admin.post("/admin/promote", json={"version": good, "reason": "operator check"})
            sent = len(traffic.answers)
            contest.wait_for(lambda: len(traffic.answers) >= sent + 40, "traffic after the swaps")
        assert traffic.failures == []
        assert (first.kind, first.data["challenger"]) == ("challenger_rolled_back", bad)
        assert (second.kind, second.data["challenger"]) == ("challenger_promoted", good), second.reason
        assert rolled.status_code == 200 and rolled.json()["version"] == 1
        assert promoted.status_code == 200 and promoted.json()["version"] == good
        assert {a["model_version"] for a in traffic.answers} >= {1, bad, good}
        assert registry.aliases("kinds") == {"champion": good}
        assert len(contest.decisions(fresh_store)) == 2 and fresh_store.verify_chain().ok
    finally:
        server.stop()
