"""Fuzzing the real server: generated requests of every shape, 0 answers 5xx, 0 tracebacks (issue 14).

Hypothesis draws the bodies (JSON of any shape, records and tensors close to valid, feedback, admin),
the paths, and the declared content types; each example is one request to a uvicorn server on loopback.
Properties of the row parsing itself run without a server.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkfab.serve import FeatureSchema, InputError, OutOfRange, host_allowlist
from darkfab.spec import DeploySpec
from darkfab.store import Store

from .conftest import LiveServer
from .contest import start

FEATURES = ("x", "count", "colour")
DATATYPES = ("FP64", "FP32", "FP16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "STRING", "")
FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0, 2**63, -(2**63), 2**64, 1e19]),
    st.text(max_size=20),
    st.sampled_from(["red", "green", "blue", "", "NaN", "inf", "1e308"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
keys = st.one_of(st.sampled_from(FEATURES), st.text(max_size=8))
record = st.one_of(
    st.fixed_dictionaries({f: scalars for f in FEATURES}),
    st.dictionaries(keys, scalars | json_values, max_size=5),
)
records_body = st.one_of(
    st.lists(record, max_size=5),
    st.fixed_dictionaries({"records": st.lists(record, max_size=5)}),
    st.dictionaries(st.sampled_from(["records", "inputs", "x"]), json_values, max_size=2),
    json_values,
)
shape = st.one_of(st.lists(st.integers(min_value=-2, max_value=6), max_size=3), json_values)
tensor = st.fixed_dictionaries(
    {
        "name": st.one_of(st.sampled_from((*FEATURES, "input")), st.text(max_size=6), json_values),
        "shape": shape,
        "datatype": st.one_of(st.sampled_from(DATATYPES), json_values),
        "data": st.one_of(
            st.lists(scalars, max_size=7), st.lists(st.lists(scalars, max_size=3), max_size=3), json_values
        ),
    },
    optional={"parameters": json_values},
)
infer_body = st.one_of(
    st.fixed_dictionaries(
        {"inputs": st.lists(tensor, max_size=4)},
        optional={"id": json_values, "outputs": json_values, "parameters": json_values},
    ),
    st.dictionaries(st.sampled_from(["inputs", "outputs", "id", "extra"]), json_values, max_size=3),
    json_values,
)
feedback_body = st.one_of(
    st.fixed_dictionaries(
        {"request_id": st.one_of(st.text(max_size=70), json_values), "label": json_values},
        optional={"row": st.one_of(st.integers(), json_values)},
    ),
    json_values,
)
content_types = st.sampled_from(
    ["application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded", None]
)
names = st.one_of(st.just("kinds"), st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.%", max_size=12))
versions = st.one_of(st.sampled_from(["1", "2", "v1", "0", "-1", "99999999999999999999", "1e3", ""]), names)


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info or "Traceback" in record.getMessage() or "Exception in ASGI" in record.getMessage():
            self.seen.append(record.getMessage())


@pytest.fixture(scope="module")
def fuzzed(fresh_module_store: Store) -> Iterator[tuple[LiveServer, httpx.Client, Tracebacks]]:
    seen = Tracebacks()
    root = logging.getLogger()
    root.addHandler(seen)
    server = start(fresh_module_store, DeploySpec(mode="canary", share=0.5, min_requests=100_000))
    try:
        with server.client() as c:
            yield server, c, seen
    finally:
        server.stop()
        root.removeHandler(seen)
    assert seen.seen == [], seen.seen[:3]


@pytest.fixture(scope="module")
def fresh_module_store(built: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from .conftest import copy_store

    with Store(copy_store(built, tmp_path_factory.mktemp("fuzz"))) as st_:
        yield st_


def _send(
    c: httpx.Client, method: str, path: str, body: Any, content_type: str | None, **headers: str
) -> httpx.Response:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    if content_type is not None:
        headers["content-type"] = content_type
    r = c.request(method, path, content=raw if method == "POST" else None, headers=headers)
    assert r.status_code < 500, (method, path, body, r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith(("application/json", "text/plain; version=")), r.headers
    return r


@pytest.mark.slow  # about 1,250 requests in all: over a minute on a busy machine
@FUZZ
@given(body=records_body, ctype=content_types, name=names)
def test_fuzz_v1_predict(fuzzed: Any, body: Any, ctype: str | None, name: str) -> None:
    _, c, _ = fuzzed
    r = _send(c, "POST", f"/v1/models/{name}/predict", body, ctype)
    if r.status_code == 200:
        assert len(r.json()["predictions"]) >= 1


@pytest.mark.slow  # about 1,250 requests in all: over a minute on a busy machine
@FUZZ
@given(body=infer_body, ctype=content_types, version=st.one_of(st.none(), versions))
def test_fuzz_v2_infer(fuzzed: Any, body: Any, ctype: str | None, version: str | None) -> None:
    _, c, _ = fuzzed
    path = "/v2/models/kinds/infer" if version is None else f"/v2/models/kinds/versions/{version}/infer"
    _send(c, "POST", path, body, ctype)


@pytest.mark.slow  # about 1,250 requests in all: over a minute on a busy machine
@FUZZ
@given(body=feedback_body, ctype=content_types)
def test_fuzz_feedback(fuzzed: Any, body: Any, ctype: str | None) -> None:
    _, c, _ = fuzzed
    _send(c, "POST", "/v1/feedback", body, ctype)


@pytest.mark.slow  # about 1,250 requests in all: over a minute on a busy machine
@FUZZ
@given(
    raw=st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)),
    path=st.sampled_from(["/v1/models/kinds/predict", "/v2/models/kinds/infer", "/v1/feedback", "/admin/promote"]),
    ctype=content_types,
    origin=st.one_of(
        st.none(), st.sampled_from(["null", "http://evil.test", "https://127.0.0.1", ""]), st.text(max_size=12)
    ),
    host=st.one_of(st.none(), st.sampled_from(["localhost", "[::1]:1", "evil.test", "127.0.0.1:99999", "[", ":::"])),
)
def test_fuzz_raw_bodies_and_headers(
    fuzzed: Any, raw: bytes, path: str, ctype: str | None, origin: str | None, host: str | None
) -> None:
    _, c, _ = fuzzed
    headers: dict[str, str] = {}
    if origin is not None and origin.isprintable() and origin.isascii() and origin == origin.strip():
        headers["origin"] = origin
    if host is not None:
        headers["host"] = host
    _send(c, "POST", path, raw, ctype, **headers)


@pytest.mark.slow  # about 1,250 requests in all: over a minute on a busy machine
@FUZZ
@given(
    body=st.one_of(
        json_values,
        st.fixed_dictionaries({}, optional={"version": json_values, "model": json_values, "reason": json_values}),
    ),
    action=st.sampled_from(["promote", "status", "rollback"]),
    token=st.sampled_from(["none", "wrong"]),
    name=names,
    version=versions,
)
def test_fuzz_admin_and_reads(fuzzed: Any, body: Any, action: str, token: str, name: str, version: str) -> None:
    server, c, _ = fuzzed
    auth = {} if token == "none" else {"authorization": "Bearer wrong"}
    _send(c, "GET" if action == "status" else "POST", f"/admin/{action}", body, "application/json", **auth)
    for path in (f"/v2/models/{name}", f"/v2/models/{name}/versions/{version}", f"/v2/models/{name}/ready"):
        _send(c, "GET", path, None, None)
    if (
        action == "promote"
        and isinstance(body, dict)
        and "version" in body
        and not isinstance(body["version"], (int, str))
    ):
        r = c.post("/admin/promote", json=body, headers={"authorization": f"Bearer {server.token}"})  # a bad version
        assert r.status_code in (400, 404, 422), r.text


# -- properties of the row parsing, without a server -------------------------------------------------

SCHEMA = FeatureSchema.of(
    FEATURES, {"x": "numeric", "count": "numeric", "colour": "categorical"}, {"x": (-3.0, 3.0), "count": (0, 4)}
)


@settings(max_examples=300, deadline=None, database=None)
@given(body=records_body)
def test_records_parse_or_refuse_with_an_input_error(body: Any) -> None:
    try:
        frame, rows = SCHEMA.from_records(body)
    except InputError as err:
        assert err.field and err.message
        return
    assert list(frame.columns) == list(FEATURES) and len(frame) == len(rows) >= 1
    for f in ("x", "count"):
        for v in frame[f]:
            assert math.isnan(v) or abs(v) <= 3.0 + 6e6 * 1.0001


@settings(max_examples=300, deadline=None, database=None)
@given(body=infer_body)
def test_tensors_parse_or_refuse_with_an_input_error(body: Any) -> None:
    inputs = body.get("inputs") if isinstance(body, dict) else body
    try:
        frame, rows = SCHEMA.from_tensors(inputs)
    except InputError as err:
        assert err.field and err.message
        return
    assert len(frame) == len(rows) >= 1


@settings(max_examples=200, deadline=None, database=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {
                "x": st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6)),
                "count": st.one_of(st.none(), st.integers(min_value=0, max_value=10**6)),
                "colour": st.one_of(st.none(), st.text(max_size=5)),
            }
        ),
        min_size=1,
        max_size=5,
    )
)
def test_records_within_range_round_trip(rows: list[dict[str, Any]]) -> None:
    frame, parsed = SCHEMA.from_records(rows)
    assert parsed == rows
    for i, r in enumerate(rows):
        assert (r["x"] is None and math.isnan(frame["x"][i])) or frame["x"][i] == r["x"]
        assert (r["count"] is None and math.isnan(frame["count"][i])) or frame["count"][i] == r["count"]


@settings(max_examples=200, deadline=None, database=None)
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_a_value_is_refused_exactly_when_absurdly_far_from_training(value: float) -> None:
    absurd = not (-3.0 - 6e6 <= value <= 3.0 + 6e6)
    try:
        SCHEMA.from_records([{"x": value, "count": 1, "colour": "red"}])
    except OutOfRange as err:
        assert absurd and err.field == "records[0].x" and repr(value) in err.message
    else:
        assert not absurd


@given(text=st.text(max_size=30))
def test_host_allowlist_takes_any_text(text: str) -> None:
    hosts = host_allowlist([text])
    assert {"127.0.0.1", "localhost", "[::1]"} <= hosts
