"""The model server over real HTTP: OIP v2 and records endpoints, input rules, size limit, metrics, log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from darkfab.registry import Registry
from darkfab.serve import create_app
from darkfab.store import Store
from darkfab.train import load_model

from .conftest import Built, LiveServer, rows_frame

FEATURES = ("x", "count", "colour")


def records(n: int = 3) -> list[dict[str, Any]]:
    df = rows_frame(n, seed=1)
    return [{"x": float(r.x), "count": int(r.count), "colour": str(r.colour)} for r in df.itertuples()]


def tensors(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    types = {"x": "FP64", "count": "INT64", "colour": "BYTES"}
    return [{"name": f, "shape": [len(recs)], "datatype": types[f], "data": [r[f] for r in recs]} for f in FEATURES]


@pytest.fixture(scope="module")
def http(kinds_server: LiveServer) -> Iterator[httpx.Client]:
    with kinds_server.client() as c:
        yield c


def _alive(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").json() == {"live": True}


# -- health and metadata ---------------------------------------------------------------------------


def test_health_and_server_metadata(http: httpx.Client) -> None:
    assert http.get("/v2/health/live").status_code == 200
    ready = http.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    meta = http.get("/v2").json()
    assert meta["name"] == "darkfab" and meta["models"] == ["kinds"]
    assert http.get("/v2/models/kinds/ready").status_code == 200


def test_model_metadata_comes_from_the_feature_schema(http: httpx.Client, store: Store) -> None:
    meta = http.get("/v2/models/kinds").json()
    version = store.get_model_version(store.get_factory("kinds").id, "champion").version
    assert meta["name"] == "kinds" and meta["versions"] == [str(version)] and meta["platform"] == "darkfab"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {"x": "FP64", "count": "FP64", "colour": "BYTES"}
    assert all(i["shape"] == [-1] for i in meta["inputs"])
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["predictions"]["datatype"] == "BYTES" and outputs["probabilities"]["shape"] == [-1, 2]
    assert sorted(meta["parameters"]["classes"]) == ["bad", "good"] and meta["parameters"]["task"] == "classification"
    same = http.get(f"/v2/models/kinds/versions/{version}").json()
    assert same == meta
    assert http.get(f"/v2/models/kinds/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("POST", "/v2/models/nope/infer"),
        ("POST", "/v1/models/nope/predict"),
        ("GET", "/v2/models/kinds/versions/99"),
        ("POST", "/v2/models/kinds/versions/99/infer"),
    ],
)
def test_unknown_model_or_version_is_404_naming_what_is_served(http: httpx.Client, method: str, path: str) -> None:
    r = http.request(method, path, json=records(1))
    assert r.status_code == 404
    assert "kinds" in r.json()["error"] or "loaded versions" in r.json()["error"]


# -- /v1 records -----------------------------------------------------------------------------------


def test_v1_predict_answers_like_the_factory(http: httpx.Client, built: Built, store: Store) -> None:
    recs = records(5)
    r = http.post("/v1/models/kinds/predict", json=recs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"model_name", "model_version", "role", "request_id", "predictions", "probabilities", "classes"}
    assert body["role"] == "champion"
    assert r.headers["x-request-id"] == body["request_id"]
    version = store.get_model_version(store.get_factory("kinds").id, "champion").version
    assert body["model_version"] == version
    model = load_model(Registry(store).load_bytes("kinds", version)[1])
    expected = model.predict(pd.DataFrame(recs)).tolist()
    assert body["predictions"] == expected
    assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"]) and len(body["probabilities"]) == 5
    wrapped = http.post("/v1/models/kinds/predict", json={"records": recs}).json()
    assert wrapped["predictions"] == expected and wrapped["request_id"] != body["request_id"]
    # a missing value (null) is imputed as in training
    assert http.post("/v1/models/kinds/predict", json=[{**recs[0], "x": None}]).status_code == 200


BAD_RECORDS = [
    ("wrong field name", [{"x": 1.0, "count": 1, "color": "red"}], "colour", "missing"),
    ("extra field", [{"x": 1.0, "count": 1, "colour": "red", "y": 2}], "'y'", "unknown field"),
    ("missing field", [{"x": 1.0, "colour": "red"}], "count", "missing"),
    ("wrong type", [{"x": "1.5", "count": 1, "colour": "red"}], "x", "expected a number"),
    ("bool where text", [{"x": 1.0, "count": 1, "colour": 2.5}], "colour", "categorical"),
    ("nested value", [{"x": [1.0], "count": 1, "colour": "red"}], "x", "expected a number"),
    ("empty list", [], "records", "empty"),
    ("not a list", {"records": {"x": 1}}, "records", "list of records"),
    ("record not an object", [[1.0, 1, "red"]], "records[0]", "object"),
    ("unknown top-level key", {"rows": []}, "records", "one key"),
]


@pytest.mark.parametrize(("case", "body", "field", "rule"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_v1_bad_records_are_4xx_naming_field_and_rule(
    http: httpx.Client, case: str, body: Any, field: str, rule: str
) -> None:
    r = http.post("/v1/models/kinds/predict", json=body)
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    assert field in message and rule in message, message
    _alive(http)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"   ", b'[{"x": NaN, "count": 1, "colour": "red"}]', b"\xff\xfe\x00garbage", b"[" * 100_000],
    ids=["broken", "empty", "blank", "nan", "binary", "deep"],
)
def test_non_json_bodies_are_400(http: httpx.Client, raw: bytes) -> None:
    r = http.post("/v1/models/kinds/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert "body" in r.json()["error"] or "finite" in r.json()["error"]
    _alive(http)


def test_a_pickle_is_never_unpickled(http: httpx.Client) -> None:
    import pickle

    r = http.post(
        "/v1/models/kinds/predict", content=pickle.dumps(records(1)), headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = http.post("/v1/models/kinds/predict", content=pickle.dumps(records(1)))  # not even claimed to be JSON
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_oversize_bodies_are_413_by_header_and_by_bytes(http: httpx.Client) -> None:
    big = json.dumps(records(1) * 20_000).encode()
    assert len(big) > 1_000_000
    r = http.post("/v1/models/kinds/predict", content=big)
    assert r.status_code == 413 and "1000000" in r.json()["error"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the server counts what arrives
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = http.post("/v1/models/kinds/predict", content=chunks())
    assert r.status_code == 413
    r = http.post("/v2/models/kinds/infer", content=big)
    assert r.status_code == 413
    _alive(http)
    ok = http.post("/v1/models/kinds/predict", json=records(1000))  # under the limit: served
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1000


# -- /v2 infer -------------------------------------------------------------------------------------


def test_v2_infer_one_tensor_per_feature(http: httpx.Client) -> None:
    recs = records(4)
    r = http.post("/v2/models/kinds/infer", json={"id": "abc", "inputs": tensors(recs)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "kinds" and body["id"] == "abc"
    assert body["parameters"]["request_id"] == r.headers["x-request-id"]
    out = {o["name"]: o for o in body["outputs"]}
    v1 = http.post("/v1/models/kinds/predict", json=recs).json()
    assert out["predictions"] == {"name": "predictions", "datatype": "BYTES", "shape": [4], "data": v1["predictions"]}
    assert out["probabilities"]["shape"] == [4, 2] and len(out["probabilities"]["data"]) == 8
    assert out["probabilities"]["parameters"]["classes"] == v1["classes"]
    only = http.post("/v2/models/kinds/infer", json={"inputs": tensors(recs), "outputs": [{"name": "predictions"}]})
    assert [o["name"] for o in only.json()["outputs"]] == ["predictions"]
    column = tensors(recs)
    column[0] = {**column[0], "shape": [4, 1], "data": [[v] for v in column[0]["data"]]}
    assert http.post("/v2/models/kinds/infer", json={"inputs": column}).status_code == 200


def _bad_tensors(change: str) -> Any:
    t = tensors(records(2))
    if change == "datatype":
        t[0]["datatype"] = "BYTES"
    elif change == "value type":
        t[0]["data"] = ["a", "b"]
    elif change == "shape":
        t[1]["shape"] = [3]
        t[1]["data"] = [1, 2, 3]
    elif change == "data length":
        t[2]["data"] = ["red"]
    elif change == "missing tensor":
        t = t[:2]
    elif change == "unknown tensor":
        t.append({"name": "z", "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]})
    elif change == "duplicate":
        t.append(dict(t[0]))
    elif change == "bad shape":
        t[0]["shape"] = "two"
    elif change == "no data":
        del t[0]["data"]
    elif change == "matrix with categorical":
        t = [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]}]
    elif change == "bad output":
        return {"inputs": t, "outputs": [{"name": "logits"}]}
    elif change == "empty":
        t = []
    elif change == "unknown key":
        return {"inputs": t, "extra": 1}
    return {"inputs": t}


BAD_TENSORS = [
    ("datatype", "inputs.x", "datatype"),
    ("value type", "inputs.x.data[0]", "FP64"),
    ("shape", "inputs.count", "rows"),
    ("data length", "inputs.colour", "flat list"),
    ("missing tensor", "colour", "missing feature tensor"),
    ("unknown tensor", "'z'", "unknown tensor"),
    ("duplicate", "duplicate", "x"),
    ("bad shape", "inputs.x", "shape"),
    ("no data", "inputs[0]", "data"),
    ("matrix with categorical", "input", "categorical"),
    ("bad output", "outputs", "logits"),
    ("empty", "inputs", "non-empty"),
    ("unknown key", "extra", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "rule"), BAD_TENSORS, ids=[c[0] for c in BAD_TENSORS])
def test_v2_bad_tensors_are_422_naming_field_and_rule(http: httpx.Client, change: str, field: str, rule: str) -> None:
    r = http.post("/v2/models/kinds/infer", json=_bad_tensors(change))
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    assert field in message and rule in message, message
    _alive(http)


def test_regression_model_over_v2_matrix_and_columns(built: Built, store: Store) -> None:
    server = LiveServer(create_app(store=store, factory=built.diabetes, log_predictions=False))
    try:
        with server.client() as c:
            meta = c.get("/v2/models/diabetes").json()
            names = [i["name"] for i in meta["inputs"]]
            assert meta["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]
            row = [0.01 * (i + 1) for i in range(len(names))]
            matrix = {"inputs": [{"name": "input", "shape": [2, len(names)], "datatype": "FP32", "data": row + row}]}
            r = c.post("/v2/models/diabetes/infer", json=matrix)
            assert r.status_code == 200, r.text
            (out,) = r.json()["outputs"]
            assert out["datatype"] == "FP64" and out["shape"] == [2] and out["data"][0] == out["data"][1]
            cols = [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in zip(names, row, strict=True)]
            assert c.post("/v2/models/diabetes/infer", json={"inputs": cols}).json()["outputs"][0]["data"][0] == (
                pytest.approx(out["data"][0])
            )
            v1 = c.post("/v1/models/diabetes/predict", json=[dict(zip(names, row, strict=True))]).json()
            assert "probabilities" not in v1 and v1["predictions"][0] == pytest.approx(out["data"][0])
            bad = {"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]}
            assert "shape must be [n, " in c.post("/v2/models/diabetes/infer", json=bad).json()["error"]
            text = c.get("/metrics").text
            assert 'darkfab_predicted_value_count{model="diabetes"' in text
    finally:
        server.stop()


# -- metrics, prediction log, feedback -------------------------------------------------------------


def _samples(text: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append(s)
    return out


def test_metrics_count_requests_latency_and_predictions(kinds_server: LiveServer) -> None:
    with kinds_server.client() as c:
        before = _samples(c.get("/metrics").text)
        for _ in range(5):
            assert c.post("/v1/models/kinds/predict", json=records(2)).status_code == 200
        c.post("/v1/models/kinds/predict", json=[{"x": "bad"}])
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    after = _samples(r.text)

    def total(samples: dict[str, list[Any]], name: str, **labels: str) -> float:
        return sum(s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items()))

    ok = total(after, "darkfab_requests_total", model="kinds", endpoint="v1_predict", outcome="ok")
    assert ok - total(before, "darkfab_requests_total", model="kinds", endpoint="v1_predict", outcome="ok") == 5
    assert total(after, "darkfab_requests_total", outcome="invalid") > total(
        before, "darkfab_requests_total", outcome="invalid"
    )
    hist = total(after, "darkfab_request_duration_seconds_count", model="kinds", endpoint="v1_predict")
    assert hist >= 6
    assert "darkfab_requests_in_flight" in after
    classes = total(after, "darkfab_predicted_class_total", model="kinds")
    rows = total(after, "darkfab_prediction_rows_total", model="kinds")
    assert classes == rows and rows - total(before, "darkfab_prediction_rows_total", model="kinds") == 10
    assert {s.labels["cls"] for s in after["darkfab_predicted_class_total"]} <= {"good", "bad"}
    assert total(after, "darkfab_served_version", model="kinds") >= 1


def _logged(store: Store, request_id: str, n: int) -> list[Any]:
    fid = store.get_factory("kinds").id
    deadline = time.monotonic() + 10
    while True:
        rows = store.list_predictions(fid, request_id=request_id)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_every_prediction_is_logged_and_feedback_labels_it(http: httpx.Client, store: Store) -> None:
    recs = records(3)
    body = http.post("/v1/models/kinds/predict", json=recs).json()
    rows = _logged(store, body["request_id"], 3)
    assert [r.row for r in rows] == [0, 1, 2]
    assert [r.features for r in rows] == recs
    assert [r.output["prediction"] for r in rows] == body["predictions"]
    assert rows[0].output["probabilities"] == pytest.approx(body["probabilities"][0])
    assert {r.version for r in rows} == {body["model_version"]} and all(r.label is None for r in rows)

    r = http.post("/v1/feedback", json={"request_id": body["request_id"], "label": "good", "row": 1})
    assert r.status_code == 200 and r.json()["updated"] == 1
    r = http.post("/v1/feedback", json={"request_id": body["request_id"], "label": "bad"})
    assert r.status_code == 409  # write-once by default: row 1 keeps "good", and nothing else is changed
    r = http.post("/v1/feedback", json={"request_id": body["request_id"], "label": "bad", "row": 0})
    assert r.json()["updated"] == 1
    r = http.post("/v1/feedback", json={"request_id": body["request_id"], "label": "bad", "row": 2})
    assert r.json()["updated"] == 1
    labelled = store.list_predictions(store.get_factory("kinds").id, request_id=body["request_id"])
    assert [x.label for x in labelled] == ["bad", "good", "bad"] and all(x.labelled_at is not None for x in labelled)

    v2 = http.post("/v2/models/kinds/infer", json={"inputs": tensors(recs[:1])})
    rid = v2.json()["parameters"]["request_id"]
    assert http.post("/v1/feedback", json={"request_id": rid, "label": "good"}).json()["updated"] == 1


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"request_id": "0" * 32, "label": "good"}, 404, "no logged prediction"),
        ({"request_id": "x", "label": "purple"}, 422, "classes"),
        ({"request_id": "x"}, 422, "label"),
        ({"label": "good"}, 422, "request_id"),
        ({"request_id": "x", "label": "good", "row": -1}, 422, "row"),
        ({"request_id": "x", "label": "good", "colour": 1}, 422, "unknown field"),
        (["x"], 422, "object"),
    ],
)
def test_bad_feedback(http: httpx.Client, body: Any, status: int, text: str) -> None:
    r = http.post("/v1/feedback", json=body)
    assert r.status_code == status and text in r.json()["error"], r.text
