"""Hostile clients over real HTTP: absurd values are the client's error, never the model's (issue 14)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from darkfab.spec import DeploySpec
from darkfab.store import Store

from ..helpers.serving import raising
from .conftest import LiveServer
from .contest import Traffic, champion_blob, decisions, labelled_records, next_decision, register_challenger, start


class Tracebacks(logging.Handler):
    """Every log record of the server that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.levelno >= logging.INFO:
            self.seen.append(self.format(record))


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    handler = Tracebacks()
    logger = logging.getLogger("darkfab")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _row(x: Any) -> dict[str, Any]:
    return {"x": x, "count": 1, "colour": "red"}


@pytest.mark.parametrize("value", [1e308, -1e308, 1e200, 9.2e18, 2**62])
def test_an_absurd_value_is_422_naming_the_column_and_the_value(
    kinds_server: LiveServer, tracebacks: Tracebacks, value: Any
) -> None:
    with kinds_server.client() as c:
        r = c.post("/v1/models/kinds/predict", json=[_row(value)])
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "records[0].x" and repr(value) in r.json()["error"]
        assert "range" in r.json()["error"] and "fix:" in r.json()["error"]
        tensors = [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [value]},
            {"name": "count", "shape": [1], "datatype": "INT64", "data": [1]},
            {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
        ]
        r = c.post("/v2/models/kinds/infer", json={"inputs": tensors})
        assert r.status_code == 422 and r.json()["field"] == "inputs.x.data[0]", r.text
        # a large but honest drift (a hundred times the training range) is still answered
        assert c.post("/v1/models/kinds/predict", json=[_row(300.0)]).status_code == 200
    assert tracebacks.seen == []


def test_the_matrix_input_checks_every_column(built: Any, store: Store) -> None:
    from darkfab.serve import create_app

    server = LiveServer(create_app(store=store, factory=built.diabetes, log_predictions=False))
    try:
        with server.client() as c:
            k = len(c.get("/v2/models/diabetes").json()["inputs"])
            data = [0.01] * k
            data[3] = 1e308
            r = c.post(
                "/v2/models/diabetes/infer",
                json={"inputs": [{"name": "input", "shape": [1, k], "datatype": "FP64", "data": data}]},
            )
            assert r.status_code == 422 and r.json()["field"] == "inputs.input.data[3]", r.text
    finally:
        server.stop()


def test_flooding_a_challenger_with_absurd_rows_does_not_roll_it_back(
    fresh_store: Store, tracebacks: Tracebacks
) -> None:
    deploy = DeploySpec(mode="canary", share=0.5, min_requests=30, max_latency_ratio=50.0)
    server = start(fresh_store, deploy)
    try:
        with server.client() as c:
            for i in range(150):  # an attacker: every request absurd
                r = c.post("/v1/models/kinds/predict", json=[_row(1e308 if i % 2 else -1e300)])
                assert r.status_code == 422, r.text
            figures = c.get("/v1/routing").json()
            assert figures["challenger"]["figures"]["requests"] == 0 and figures["challenger"]["figures"]["errors"] == 0
            assert decisions(fresh_store) == []
        with Traffic(server, seed=5) as traffic:  # then honest traffic: the (identical) challenger wins
            event = next_decision(fresh_store, 0)
        assert traffic.failures == []
        assert event.kind == "challenger_promoted", event.reason
        assert event.data["figures"]["challenger"]["errors"] == 0
    finally:
        server.stop()
    assert tracebacks.seen == []


def test_a_model_failure_is_500_recorded_with_the_row_and_counted(fresh_store: Store, tracebacks: Tracebacks) -> None:
    v = register_challenger(fresh_store, raising(champion_blob(fresh_store), limit=3.0), "fails on big x")
    server = start(fresh_store, DeploySpec(mode="canary", share=0.5, min_requests=100_000))
    fid = fresh_store.get_factory("kinds").id
    try:
        with server.client() as c:
            row = labelled_records(1, seed=1)[0][0] | {"x": 10.0}  # within range: the model's failure
            tensors = [
                {"name": "x", "shape": [1], "datatype": "FP64", "data": [row["x"]]},
                {"name": "count", "shape": [1], "datatype": "INT64", "data": [row["count"]]},
                {"name": "colour", "shape": [1], "datatype": "BYTES", "data": [row["colour"]]},
            ]
            r = c.post(f"/v2/models/kinds/versions/{v}/infer", json={"inputs": tensors})
            assert r.status_code == 500, r.text
            assert "failed on this input" in r.json()["error"] and "recorded" in r.json()["error"]
            events = fresh_store.list_events(factory_id=fid, kinds=("prediction_failed",))
            assert len(events) == 1 and events[0].data["version"] == v and events[0].data["rows"] == [row]
            assert "RaisesAbove" in events[0].data["error"] and events[0].data["request_id"] in r.json()["error"]
            assert c.get("/v1/routing").json()["challenger"]["figures"]["errors"] == 1
    finally:
        server.stop()
    assert tracebacks.seen == []


def test_client_errors_never_reach_the_live_figures(kinds_server: LiveServer) -> None:
    with kinds_server.client() as c:
        before = c.get("/v1/routing").json()["champion"]["figures"]["errors"]
        for bad in ([_row("text")], [_row(1e308)], [{"x": 1.0}], "nope"):
            assert c.post("/v1/models/kinds/predict", json=bad).status_code == 422
        assert c.get("/v1/routing").json()["champion"]["figures"]["errors"] == before


# -- a web page in the user's browser ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"],
)
@pytest.mark.parametrize("path", ["/v1/models/kinds/predict", "/v2/models/kinds/infer", "/v1/feedback"])
def test_a_body_that_is_not_declared_json_is_415(kinds_server: LiveServer, path: str, content_type: Any) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    with kinds_server.client() as c:
        r = c.post(path, content=json.dumps([_row(0.5)]).encode(), headers=headers)
        assert r.status_code == 415, r.text
        assert "application/json" in r.json()["error"] and r.json()["field"] == "Content-Type"


def test_json_with_a_charset_is_json(kinds_server: LiveServer) -> None:
    with kinds_server.client() as c:
        body = json.dumps([_row(0.5)]).encode()
        r = c.post(
            "/v1/models/kinds/predict", content=body, headers={"content-type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1", ""])
def test_a_foreign_host_is_refused_dns_rebinding(kinds_server: LiveServer, host: str) -> None:
    with kinds_server.client() as c:
        for r in (
            c.get("/v1/routing", headers={"host": host}),
            c.post("/v1/models/kinds/predict", json=[_row(0.5)], headers={"host": host}),
        ):
            assert r.status_code == 421, r.text
            assert "--allow-host" in r.json()["error"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost:1234", "LOCALHOST", "[::1]:8000", "[::1]"])
def test_loopback_names_are_allowed_with_any_port(kinds_server: LiveServer, host: str) -> None:
    with kinds_server.client() as c:
        assert c.post("/v1/models/kinds/predict", json=[_row(0.5)], headers={"host": host}).status_code == 200


def test_allowed_hosts_are_configurable(built: Any, store: Store) -> None:
    from darkfab.serve import create_app, host_allowlist

    server = LiveServer(
        create_app(
            store=store, factory=built.kinds, log_predictions=False, allowed_hosts=host_allowlist(["models.internal"])
        )
    )
    try:
        with server.client() as c:
            assert c.get("/v1/routing", headers={"host": "models.internal:8000"}).status_code == 200
            assert c.get("/v1/routing", headers={"host": "localhost"}).status_code == 200
            assert c.get("/v1/routing", headers={"host": "other.internal"}).status_code == 421
    finally:
        server.stop()


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:3000", "http://127.0.0.1:1"])
def test_a_foreign_origin_may_not_predict_label_or_administer(kinds_server: LiveServer, origin: str) -> None:
    with kinds_server.client(headers={"origin": origin}) as c:
        r = c.post("/v1/models/kinds/predict", json=[_row(0.5)])
        assert r.status_code == 403 and r.json()["field"] == "Origin", r.text
        assert c.post("/v1/feedback", json={"request_id": "x", "label": "good"}).status_code == 403
        assert c.post("/admin/pause", headers={"authorization": f"Bearer {kinds_server.token}"}).status_code == 403
        assert c.get("/v1/routing").status_code == 200  # reading: the browser keeps the answer from the page
    with kinds_server.client() as c:
        assert c.get("/v2/health/ready").json() == {"ready": True}


def test_the_servers_own_origin_and_no_origin_are_fine(kinds_server: LiveServer) -> None:
    with kinds_server.client(headers={"origin": kinds_server.url}) as c:
        assert c.post("/v1/models/kinds/predict", json=[_row(0.5)]).status_code == 200
    with kinds_server.client() as c:
        assert c.post("/v1/models/kinds/predict", json=[_row(0.5)]).status_code == 200


# -- feedback: a credential, and write-once ------------------------------------------------------------


def _predicted(c: Any) -> str:
    r = c.post("/v1/models/kinds/predict", json=[_row(0.5), _row(-0.5)])
    assert r.status_code == 200, r.text
    return str(r.json()["request_id"])


def test_feedback_is_write_once_by_default(fresh_store: Store) -> None:
    server = start(fresh_store, None)
    fid = fresh_store.get_factory("kinds").id
    try:
        with server.client() as c:
            rid = _predicted(c)
            assert c.post("/v1/feedback", json={"request_id": rid, "label": "good"}).json()["updated"] == 2
            again = c.post("/v1/feedback", json={"request_id": rid, "label": "good"})  # idempotent
            assert again.status_code == 200 and again.json()["updated"] == 0
            r = c.post("/v1/feedback", json={"request_id": rid, "label": "bad", "row": 1})
            assert r.status_code == 409 and "write-once" in r.json()["error"] and "last_wins" in r.json()["error"]
            assert [p.label for p in fresh_store.list_predictions(fid, request_id=rid)] == ["good", "good"]
            events = fresh_store.list_events(factory_id=fid, kinds=("feedback_conflict",))
            assert len(events) == 1 and events[0].data["held"] == [{"row": 1, "label": "good"}]
            assert events[0].data["label"] == "bad" and "refused" in events[0].reason
    finally:
        server.stop()


def test_feedback_last_wins_when_the_factory_file_says_so(fresh_store: Store) -> None:
    server = start(fresh_store, DeploySpec(feedback="last_wins"))
    fid = fresh_store.get_factory("kinds").id
    try:
        with server.client() as c:
            rid = _predicted(c)
            assert c.post("/v1/feedback", json={"request_id": rid, "label": "good"}).json()["updated"] == 2
            r = c.post("/v1/feedback", json={"request_id": rid, "label": "bad", "row": 1})
            assert r.status_code == 200 and r.json()["updated"] == 1
            assert [p.label for p in fresh_store.list_predictions(fid, request_id=rid)] == ["good", "bad"]
            events = fresh_store.list_events(factory_id=fid, kinds=("feedback_conflict",))
            assert len(events) == 1 and "replaced" in events[0].reason
    finally:
        server.stop()


def test_feedback_token_when_given_is_required(fresh_store: Store) -> None:
    server = start(fresh_store, None, feedback_token="s3cret-label-key")
    try:
        with server.client() as c:
            rid = _predicted(c)
            body = {"request_id": rid, "label": "good"}
            assert c.post("/v1/feedback", json=body).status_code == 401
            assert c.post("/v1/feedback", json=body, headers={"authorization": "Bearer wrong"}).status_code == 401
            assert (
                c.post("/v1/feedback", json=body, headers={"authorization": f"Bearer {server.token}"}).status_code
                == 401
            )
            r = c.post("/v1/feedback", json=body, headers={"authorization": "Bearer s3cret-label-key"})
            assert r.status_code == 200 and r.json()["updated"] == 2
    finally:
        server.stop()


def test_a_tensor_named_by_a_list_is_422_not_500(kinds_server: LiveServer) -> None:  # found by the fuzzer
    with kinds_server.client() as c:
        r = c.post(
            "/v2/models/kinds/infer",
            json={"inputs": [{"name": ["x"], "shape": [1], "datatype": "FP64", "data": [1.0]}]},
        )
        assert r.status_code == 422 and r.json()["field"] == "inputs[0].name", r.text
