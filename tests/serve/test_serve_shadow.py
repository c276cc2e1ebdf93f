"""Shadow routing over real HTTP: the champion answers everything, the challenger's figures grow."""

from __future__ import annotations

from darkfab.registry import Registry
from darkfab.spec import DeploySpec
from darkfab.store import Store

from ..helpers.serving import inverted
from .contest import Traffic, champion_blob, decisions, labelled_records, next_decision, register_challenger, start


def test_shadow_answers_from_the_champion_and_measures_the_challenger(fresh_store: Store) -> None:
    fid = fresh_store.get_factory("kinds").id
    logged = {v: len(fresh_store.list_predictions(fid, version=v)) for v in (1, 2)}  # by earlier tests
    server = start(fresh_store, DeploySpec(mode="shadow", min_requests=100_000))
    try:
        with Traffic(server, clients=4, per_client=15, seed=2, label=True) as traffic:
            traffic.join()
        assert traffic.failures == []
        assert {(a["model_version"], a["role"]) for a in traffic.answers} == {(1, "champion")}
        assert server.service.drain_shadow()
        with server.client() as c:
            routing = c.get("/v1/routing").json()
        assert routing["mode"] == "shadow" and routing["share"] == 0.0
        challenger, champion = routing["challenger"]["figures"], routing["champion"]["figures"]
        assert challenger["version"] == 2 and challenger["requests"] == champion["requests"] == 60
        # the challenger's shadow answers met the labels of the rows they shadowed
        assert challenger["quality"]["labelled_rows"] == champion["quality"]["labelled_rows"] == 60
        assert challenger["quality"]["value"] == champion["quality"]["value"]  # v2 holds v1's bytes
        # shadow answers are discarded: the prediction log holds only what clients were told
        server.service.logger.flush()
        assert len(fresh_store.list_predictions(fid, version=2)) == logged[2]
        assert len(fresh_store.list_predictions(fid, version=1)) == logged[1] + 60
        assert decisions(fresh_store) == []
    finally:
        server.stop()


def test_a_shadowed_challenger_with_worse_quality_is_rolled_back_unseen(fresh_store: Store) -> None:
    register_challenger(fresh_store, inverted(champion_blob(fresh_store)), "answers the other class")
    server = start(fresh_store, DeploySpec(mode="shadow", min_requests=50, max_latency_ratio=50.0))
    try:
        with Traffic(server, seed=4, label=True) as traffic:
            event = next_decision(fresh_store, 0)
        assert traffic.failures == [] and all(a["model_version"] == 1 for a in traffic.answers)
        assert event.kind == "challenger_rolled_back" and event.reason.startswith("shadow: rolled back: accuracy")
        assert event.data["mode"] == "shadow" and event.data["figures"]["challenger"]["requests"] >= 50
        assert Registry(fresh_store).aliases("kinds") == {"champion": 1}
    finally:
        server.stop()


def test_a_shadowed_challenger_as_good_as_the_champion_is_promoted(fresh_store: Store) -> None:
    server = start(fresh_store, DeploySpec(mode="shadow", min_requests=40, max_latency_ratio=50.0))
    try:
        with Traffic(server, seed=6) as traffic:
            event = next_decision(fresh_store, 0)
        assert traffic.failures == []
        assert event.kind == "challenger_promoted", event.reason
        assert Registry(fresh_store).aliases("kinds") == {"champion": 2}
        with server.client() as c:
            r = c.post("/v1/models/kinds/predict", json=[labelled_records(1, seed=1)[0][0]])
        assert r.json()["model_version"] == 2 and r.json()["role"] == "champion"
    finally:
        server.stop()
