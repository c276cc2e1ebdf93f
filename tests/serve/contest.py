"""Helpers of the routing tests (canary, shadow, hot reload): traffic, labels, challengers, waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from darkfab.registry import Registry
from darkfab.serve import create_app
from darkfab.spec import DeploySpec
from darkfab.store import EventRecord, Store

from ..helpers.serving import register_copy
from .conftest import LiveServer, rows_frame


def labelled_records(n: int, seed: int, *, x: float | None = None) -> list[tuple[dict[str, Any], str]]:
    """``n`` rows of the kinds factory with their true label (the rule rows_frame draws them by)."""
    df = rows_frame(n, seed=seed)
    out = []
    for r in df.itertuples():
        value = float(r.x) if x is None else x
        label = "good" if value + (r.colour == "red") > 0 else "bad"
        out.append(({"x": value, "count": int(r.count), "colour": str(r.colour)}, label))
    return out


def register_challenger(store: Store, blob: bytes, why: str) -> int:
    registry = Registry(store)
    champion = registry.get("kinds", "champion")
    return register_copy(registry, "kinds", champion, blob, reason=why, aliases=("challenger",)).version


def champion_blob(store: Store) -> bytes:
    return Registry(store).load_bytes("kinds", "champion")[1]


def start(store: Store, deploy: DeploySpec | None, **kw: Any) -> LiveServer:
    options: dict[str, Any] = {"poll_interval_s": 0.2, "seed": 11, "flush_interval_s": 0.05}
    options.update(kw)
    return LiveServer(create_app(store=store, factory="kinds", deploy=deploy, **options))


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def decisions(store: Store) -> list[EventRecord]:
    fid = store.get_factory("kinds").id
    return store.list_events(factory_id=fid, kinds=("challenger_promoted", "challenger_rolled_back"))


def predict(c: httpx.Client, record: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/v1/models/kinds/predict", json=[record])
    assert r.status_code == 200, r.text
    return r.json()


class Traffic:
    """``clients`` threads, each with its own connection, sending one-row requests (and their labels).

    Each client sends ``per_client`` requests, or runs until :meth:`stop` when that is None. Every answer
    is kept in ``answers`` and every failure (a status other than 200, or a broken connection) in
    ``failures``. With ``x`` set, every third request carries that value of x.
    """

    def __init__(
        self,
        server: LiveServer,
        *,
        clients: int = 4,
        seed: int = 0,
        label: bool = False,
        per_client: int | None = None,
        x: float | None = None,
    ) -> None:
        self.server = server
        self.label = label
        self.x = x
        self.per_client = per_client
        self.answers: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(seed + k,), daemon=True) for k in range(clients)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self.join()

    def join(self) -> None:
        for t in self._threads:
            t.join(120)

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures.append(what)

    def _run(self, seed: int) -> None:
        rows = labelled_records(self.per_client or 500, seed)
        sent = 0
        with self.server.client() as c:
            while not self._stop.is_set() and (self.per_client is None or sent < self.per_client):
                record, truth = rows[sent % len(rows)]
                if self.x is not None and sent % 3 == 0:
                    record = {**record, "x": self.x}
                    truth = "good" if self.x + (record["colour"] == "red") > 0 else "bad"
                sent += 1
                try:
                    r = c.post("/v1/models/kinds/predict", json=[record])
                    if r.status_code != 200:
                        self._fail(f"predict {r.status_code}: {r.text[:200]}")
                        continue
                    body = r.json()
                    with self._lock:
                        self.answers.append(body)
                    if self.label:
                        f = c.post("/v1/feedback", json={"request_id": body["request_id"], "label": truth})
                        if f.status_code != 200:
                            self._fail(f"feedback {f.status_code}: {f.text[:200]}")
                except httpx.HTTPError as err:
                    self._fail(f"{type(err).__name__}: {err}")


def next_decision(store: Store, seen: int, timeout: float = 45.0) -> EventRecord:
    """The decision recorded after the first ``seen`` ones (waiting for it)."""
    return wait_for(lambda: decisions(store)[seen:], "a routing decision", timeout)[0]
