"""Hostile clients over real HTTP: absurd values are the client's error, never the model's (issue 14)."""

from __future__ import annotations

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
