"""Canary routing over real HTTP: the declared share, per-version figures, promotion and rollback."""

from __future__ import annotations

import math

from darkfab.registry import Registry
from darkfab.spec import DeploySpec
from darkfab.store import Store

from ..helpers.serving import inverted, raising, refitted
from .conftest import rows_frame
from .contest import (
    Traffic,
    champion_blob,
    decisions,
    labelled_records,
    next_decision,
    predict,
    register_challenger,
    start,
    wait_for,
)


def test_canary_share_is_observed_and_each_answer_names_its_version(fresh_store: Store) -> None:
    fid = fresh_store.get_factory("kinds").id
    logged = {v: len(fresh_store.list_predictions(fid, version=v)) for v in (1, 2)}  # by earlier tests
    server = start(fresh_store, DeploySpec(mode="canary", share=0.3, min_requests=100_000))
    try:
        n = 400
        with Traffic(server, clients=8, per_client=n // 8, seed=3) as traffic:
            traffic.join()
        assert traffic.failures == []
        answers = traffic.answers
        with server.client() as c:
            routing = c.get("/v1/routing").json()
            metrics = c.get("/metrics").text
        by_role = {"champion": 0, "challenger": 0}
        for a in answers:
            by_role[a["role"]] += 1
            assert a["model_version"] == (2 if a["role"] == "challenger" else 1)
        sigma = math.sqrt(n * 0.3 * 0.7)
        assert abs(by_role["challenger"] - n * 0.3) <= 4 * sigma, by_role

        assert routing["mode"] == "canary" and routing["share"] == 0.3
        assert routing["champion"]["version"] == 1 and routing["challenger"]["version"] == 2
        figures = routing["challenger"]["figures"]
        assert figures["requests"] == by_role["challenger"] and figures["errors"] == 0
        assert routing["champion"]["figures"]["requests"] == by_role["champion"]
        assert figures["latency_p95_ms"] > 0 and set(figures["distribution"]["classes"]) <= {"bad", "good"}
        assert (
            f'darkfab_live_requests{{model="kinds",role="challenger",version="2"}} {float(by_role["challenger"])}'
            in (metrics)
        )
        assert 'darkfab_routing_canary_share{model="kinds"} 0.3' in metrics

        server.service.logger.flush()
        assert len(fresh_store.list_predictions(fid, version=2)) == logged[2] + by_role["challenger"]
        assert len(fresh_store.list_predictions(fid, version=1)) == logged[1] + by_role["champion"]
        assert decisions(fresh_store) == []
    finally:
        server.stop()


def test_an_as_good_challenger_is_promoted_with_the_figures_as_reason(fresh_store: Store) -> None:
    challenger = register_challenger(
        fresh_store, refitted(champion_blob(fresh_store), rows_frame(), "kind", C=20.0), "refit with C=20"
    )
    deploy = DeploySpec(mode="canary", share=0.5, min_requests=40, max_latency_ratio=50.0, max_quality_drop=0.1)
    server = start(fresh_store, deploy)
    try:
        with server.client() as c:
            with Traffic(server, seed=5, label=True) as traffic:
                event = next_decision(fresh_store, 0)
            answers = traffic.answers
            assert traffic.failures == []
            assert event.kind == "challenger_promoted", event.reason
            assert event.reason.startswith("canary: promoted")
            assert (
                f"challenger v{challenger} vs champion v1" in event.reason
                and "error rate 0.000 vs 0.000" in event.reason
            )
            assert "accuracy" in event.reason and "p95" in event.reason
            assert event.data["figures"]["challenger"]["requests"] >= 40 and event.data["checks"]["error_rate"]
            registry = Registry(fresh_store)
            assert registry.get("kinds", "champion").version == challenger
            assert "challenger" not in registry.aliases("kinds")
            fid = fresh_store.get_factory("kinds").id
            last_alias_events = fresh_store.list_events(factory_id=fid, kinds=("alias_set", "alias_deleted"), limit=2)
            assert [e.kind for e in last_alias_events] == ["alias_set", "alias_deleted"]
            assert all(e.reason == event.reason for e in last_alias_events)
            assert {a["role"] for a in answers} == {"champion", "challenger"}

            after = [predict(c, rec) for rec, _ in labelled_records(20, seed=6)]
            assert {(a["model_version"], a["role"]) for a in after} == {(challenger, "champion")}
            routing = c.get("/v1/routing").json()
            assert routing["challenger"] is None and routing["last_decision"]["kind"] == "challenger_promoted"
        assert fresh_store.verify_chain().ok
    finally:
        server.stop()


def test_a_challenger_that_fails_is_rolled_back_and_no_request_fails(fresh_store: Store) -> None:
    challenger = register_challenger(fresh_store, raising(champion_blob(fresh_store), limit=3.0), "fails on big x")
    server = start(fresh_store, DeploySpec(mode="canary", share=0.5, min_requests=30, max_latency_ratio=50.0))
    try:
        with server.client() as c:
            with Traffic(server, seed=7, x=10.0) as traffic:  # the challenger fails on every third request
                event = next_decision(fresh_store, 0)
            answers = traffic.answers
            assert traffic.failures == []
            assert event.kind == "challenger_rolled_back" and event.reason.startswith("canary: rolled back: error rate")
            assert event.data["figures"]["challenger"]["errors"] > 0 and not event.data["checks"]["error_rate"]
            # the champion answered the requests the challenger failed on
            assert any(a["role"] == "champion" and a["model_version"] == 1 for a in answers)
            registry = Registry(fresh_store)
            assert registry.get("kinds", "champion").version == 1 and "challenger" not in registry.aliases("kinds")
            after = [predict(c, rec) for rec, _ in labelled_records(10, seed=8)]
            assert {(a["model_version"], a["role"]) for a in after} == {(1, "champion")}
            assert c.get("/v1/routing").json()["challenger"] is None
        assert challenger == 3
    finally:
        server.stop()


def test_a_challenger_with_worse_live_quality_is_rolled_back(fresh_store: Store) -> None:
    register_challenger(fresh_store, inverted(champion_blob(fresh_store)), "answers the other class")
    server = start(fresh_store, DeploySpec(mode="canary", share=0.5, min_requests=60, max_latency_ratio=50.0))
    try:
        with Traffic(server, seed=9, label=True) as traffic:
            event = next_decision(fresh_store, 0)
        assert traffic.failures == []
        assert event.kind == "challenger_rolled_back" and "accuracy" in event.reason
        assert event.data["checks"] == {"error_rate": True, "latency": True, "quality": False}
        ch, cp = event.data["figures"]["challenger"]["quality"], event.data["figures"]["champion"]["quality"]
        assert min(ch["labelled_rows"], cp["labelled_rows"]) >= 30 and ch["value"] < cp["value"]
        assert Registry(fresh_store).get("kinds", "champion").version == 1
    finally:
        server.stop()


def test_operator_rollback_drops_a_routed_challenger_and_promote_ends_the_contest(fresh_store: Store) -> None:
    server = start(fresh_store, DeploySpec(mode="canary", share=0.5, min_requests=100_000))
    registry = Registry(fresh_store)
    try:
        with server.admin() as admin:
            status = admin.get("/admin/status").json()
            assert status["routing"]["challenger"]["version"] == 2
            r = admin.post("/admin/rollback", json={"reason": "not today"})
            assert r.status_code == 200 and r.json()["dropped"] == 2 and r.json()["version"] == 1
            assert "challenger" not in registry.aliases("kinds") and registry.get("kinds", "champion").version == 1
            event = decisions(fresh_store)[-1]
            assert (
                event.kind == "challenger_rolled_back"
                and "not today" in event.reason
                and event.data["by"] == "operator"
            )

            v3 = register_challenger(fresh_store, champion_blob(fresh_store), "again")
            wait_for(lambda: (admin.get("/v1/routing").json()["challenger"] or {}).get("version") == v3, "reload")
            r = admin.post("/admin/promote", json={"version": "challenger", "reason": "looks fine"})
            assert r.status_code == 200 and r.json() == {
                "model": "kinds",
                "version": v3,
                "previous": 1,
                "changed": True,
            }
            assert registry.aliases("kinds") == {"champion": v3}
            assert decisions(fresh_store)[-1].kind == "challenger_promoted"
            with server.client() as c:
                assert predict(c, labelled_records(1, seed=1)[0][0])["model_version"] == v3
    finally:
        server.stop()


def test_cli_rollback_drops_the_challenger(fresh_store: Store) -> None:
    import typer
    from typer.testing import CliRunner

    from darkfab.cli.serve import commands

    server = start(fresh_store, DeploySpec(mode="shadow", min_requests=100_000))
    try:
        app = typer.Typer()
        commands.register(app)
        r = CliRunner().invoke(app, ["rollback", "--url", server.url, "--store", fresh_store.url, "--reason", "cli"])
        assert r.exit_code == 0, r.output
        assert "challenger version 2 dropped; champion stays version 1" in " ".join(r.output.split())
        assert Registry(fresh_store).aliases("kinds") == {"champion": 1}
    finally:
        server.stop()
