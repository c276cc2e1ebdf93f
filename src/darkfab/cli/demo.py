"""The default factory's demonstration of the whole loop, on scikit-learn's digits.

After the first champion, :func:`run_demo` serves it on loopback through a :class:`darkfab.runtime.Lifecycle`,
replays held-out rows (the validation and sealed-test images the champion never trained on) as live
traffic with feedback labels for a share of them, then injects a drift part-way: every image moves one
pixel to the left. The monitor sees most pixel columns drift and live accuracy fall; the lifecycle retrains
on the reference data plus the labelled live rows, the winner goes to canary, and the server promotes it
when its live figures are no worse. Everything it does is in the store, so the timeline explains it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..data import load_dataset
from ..errors import DarkfabError
from ..events import EventKind
from ..results import RunResult
from ..runtime import Factory, Lifecycle, Step, last_event_id, timeline

FEEDBACK_SHARE = 0.8  # share of live requests whose true label comes back


def shift_left(frame: pd.DataFrame, pixels: int = 1) -> pd.DataFrame:
    """8x8 digit images (64 columns, row-major) moved ``pixels`` to the left; the right edge becomes blank."""
    if frame.shape[1] != 64:
        raise DarkfabError(f"shift_left expects 64 pixel columns of 8x8 images, got {frame.shape[1]} columns")
    images = frame.to_numpy(dtype=float).reshape(-1, 8, 8)
    moved = np.zeros_like(images)
    moved[:, :, : 8 - pixels] = images[:, :, pixels:]
    return pd.DataFrame(moved.reshape(-1, 64), columns=frame.columns)


@dataclass
class DemoResult:
    url: str
    requests: int
    drift_at: int  # the request from which traffic drifted
    retrains: list[RunResult]
    champion: int  # the champion's version when the demo ended
    steps: list[Step] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "requests": self.requests,
            "drift_at_request": self.drift_at,
            "retrains": [r.to_json() for r in self.retrains],
            "champion": self.champion,
            "timeline": [s.to_json() for s in self.steps],
        }


class _Replay:
    """Held-out rows as live traffic, one row per request, with feedback for a share of them."""

    def __init__(self, url: str, model: str, rows: pd.DataFrame, labels: np.ndarray, seed: int) -> None:
        import httpx

        self.client = httpx.Client(base_url=url, timeout=30.0)
        self.model = model
        self.rows = rows
        self.labels = labels
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(rows))
        self.at = 0
        self.sent = 0

    def send(self, n: int, transform: Callable[[pd.DataFrame], pd.DataFrame] | None = None) -> None:
        for _ in range(n):
            i = self.order[self.at % len(self.order)]
            self.at += 1
            row = self.rows.iloc[[i]]
            if transform is not None:
                row = transform(row)
            record = {k: float(v) for k, v in row.iloc[0].items()}
            got = self.client.post(f"/v1/models/{self.model}/predict", json=[record])
            got.raise_for_status()
            self.sent += 1
            if self.rng.random() < FEEDBACK_SHARE:
                label = self.labels[i]
                body = {
                    "request_id": got.json()["request_id"],
                    "label": label.item() if hasattr(label, "item") else label,
                }
                self.client.post("/v1/feedback", json=body).raise_for_status()

    def close(self) -> None:
        self.client.close()


def run_demo(
    factory: Factory,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    retrain_trials: int = 30,
    retrain_time: str = "60s",
    after_event: int | None = None,
    on_step: Callable[[Step], None] | None = None,
    seed: int = 0,
) -> DemoResult:
    """Serve, replay, drift, detect, retrain, canary, promote; the timeline from ``after_event`` on."""
    spec = factory.spec
    data = load_dataset(spec)
    if len(data.features) != 64:
        raise DarkfabError("the demo replays digits images; run it on the built-in default factory")
    rows = pd.concat([data.X_valid, data.X_test], ignore_index=True)
    labels = data.decode(np.concatenate([data.y_valid, data.y_test]))
    mark = last_event_id(factory.store) if after_event is None else after_event
    window = spec.monitor.window
    lc = Lifecycle(
        factory,
        host=host,
        port=port,
        check_every_s=0.5,
        poll_interval_s=0.5,
        retrain_trials=retrain_trials,
        retrain_time=retrain_time,
        fresh_labels=2 * window,
        fresh_wait_s=60.0,
        seed=seed,
        on_step=on_step,
    )
    fid = lc.factory_id
    store = factory.store
    with lc:
        url = lc.url
        replay = _Replay(url, spec.name, rows, labels, seed)
        try:
            windows_before = len(store.list_monitor_windows(fid))
            replay.send(2 * window)  # the world as it was: no alarm
            lc.wait(lambda: len(store.list_monitor_windows(fid)) >= windows_before + 2, timeout=30)
            drift_at = replay.sent + 1
            store.append_event(
                kind=EventKind.LIFECYCLE_NOTE,
                reason=f"demo: drift injected from request {drift_at} on: every image moves one pixel to the left",
                factory_id=fid,
                data={"request": drift_at},
            )
            sent = 0
            while not (lc.retraining or lc.results or lc.failures) and sent < 10 * window:
                replay.send(window // 5, shift_left)
                sent += window // 5
            if lc.retraining:
                replay.send(3 * window, shift_left)  # fresh labelled rows for the new campaign
            lc.wait(lambda: bool(lc.results or lc.failures), timeout=_seconds(retrain_time) + 120)
            result = lc.results[-1] if lc.results else None
            if result is not None and result.champion is not None and result.champion.alias == "challenger":
                new = result.champion.version
                budget = 20 * spec.deploy.min_requests
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and budget > 0 and _contest_open(store, fid, new):
                    replay.send(10, shift_left)
                    budget -= 10
                lc.wait(lambda: not _contest_open(store, fid, new), timeout=10)
        finally:
            replay.close()
        champion = store.get_model_version(fid, "champion").version
    return DemoResult(
        url=url,
        requests=replay.sent,
        drift_at=drift_at,
        retrains=list(lc.results),
        champion=champion,
        steps=timeline(store, spec.name, after_event=mark),
    )


def _contest_open(store: Any, fid: int, version: int) -> bool:
    return store.aliases(fid).get("challenger") == version


def _seconds(value: str) -> float:
    from ..spec import parse_duration

    return parse_duration(value)
