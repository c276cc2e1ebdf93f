"""Monitor over the real store: windows closed by count and by age, stored, resumed, live quality, events."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from darkfab.errors import StoreError
from darkfab.monitor import Alerter, Monitor
from darkfab.spec import MonitorSpec
from darkfab.store import Store

TYPES = {"x": "numeric", "z": "numeric", "colour": "categorical"}


def frame(n: int, seed: int, shift: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(3.0 if shift else 0.0, 1.0, size=n),
            "z": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n, p=[0.1, 0.1, 0.8] if shift else [0.5, 0.3, 0.2]),
        }
    )


def predict(df: pd.DataFrame) -> np.ndarray:
    return np.where(df["x"] > 0, "good", "bad")


def log(store: Store, factory_id: int, df: pd.DataFrame, *, start: int = 0, version: int = 1, **kw: Any) -> list[str]:
    preds = predict(df)
    ids = [f"r{start + i}" for i in range(len(df))]
    rows = [
        {
            "factory_id": factory_id,
            "version": version,
            "request_id": rid,
            "features": {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()},
            "output": {"prediction": str(p)},
            **kw,
        }
        for rid, rec, p in zip(ids, df.to_dict("records"), preds, strict=True)
    ]
    store.log_predictions(rows)
    return ids


@pytest.fixture
def factory(store: Store) -> int:
    fid = store.ensure_factory("shop", {"name": "shop"}).id
    store.add_model_version(
        fid,
        artifact_hash="0" * 64,
        artifact_path="nowhere",
        trial_id=None,
        trainer="rule",
        params={},
        metrics={"sealed_test": {"metric": "accuracy", "score": 0.95}},
        lineage={},
        reason="test champion",
        aliases=("champion",),
    )
    return fid


def monitor(store: Store, **spec: Any) -> Monitor:
    reference = frame(3000, seed=0)
    return Monitor(
        store,
        "shop",
        reference,
        TYPES,
        MonitorSpec(**{"window": 500, **spec}),
        reference_predictions=predict(reference),
        alerter=Alerter(None),
    )


def test_stationary_traffic_closes_quiet_windows_by_count(store: Store, factory: int) -> None:
    log(store, factory, frame(1100, seed=1))
    results = monitor(store).check()
    assert [r.number for r in results] == [1, 2]  # 100 rows wait for the next window
    assert not any(r.trigger or r.alarm for r in results)
    stored = store.list_monitor_windows(factory)
    assert [(w.number, w.rows, w.version) for w in stored] == [(1, 500, 1), (2, 500, 1)]
    assert stored[1].first_prediction_id == stored[0].last_prediction_id + 1
    assert stored[0].drift["prediction"]["method"] == "jensenshannon"
    assert not store.list_events(factory_id=factory, kinds=("drift_detected", "quality_decay"))


def test_drift_triggers_and_names_the_columns_in_the_event(store: Store, factory: int) -> None:
    log(store, factory, frame(500, seed=1))
    log(store, factory, frame(500, seed=2, shift=True), start=500)
    first, second = monitor(store).check()
    assert not first.trigger
    assert second.trigger and second.drift.dataset_drift and second.record.triggered
    assert set(second.drift.drifted_columns) == {"x", "colour"}
    assert second.record.prediction_drift
    (event,) = store.list_events(factory_id=factory, kinds=("drift_detected",))
    assert event.reason.startswith("window 2: dataset drift: 2 of 3 features drifted")
    assert "x (wasserstein" in event.reason and "colour (jensenshannon" in event.reason
    assert event.data["window"] == 2
    assert store.verify_chain().ok


def test_retrain_off_reports_drift_without_a_trigger(store: Store, factory: int) -> None:
    log(store, factory, frame(500, seed=2, shift=True))
    (result,) = monitor(store, retrain=False).check()
    assert result.alarm and not result.trigger
    assert "retrain is off" in result.reason


def test_live_quality_from_feedback_labels_and_decay(store: Store, factory: int) -> None:
    df = frame(500, seed=3)
    ids = log(store, factory, df)
    truth = predict(df)
    wrong = {"good": "bad", "bad": "good"}
    for i, rid in enumerate(ids[:100]):  # 100 labels, 30 of them say the model was wrong
        store.add_feedback(factory, rid, wrong[truth[i]] if i < 30 else str(truth[i]))
    (result,) = monitor(store, quality_drop=0.1).check()
    q = result.quality
    assert (q.metric, q.labelled, q.champion) == ("accuracy", 100, 0.95)
    assert q.value == pytest.approx(0.70)
    assert q.drop == pytest.approx(0.25) and q.decayed
    assert result.trigger and not result.drift.dataset_drift
    assert result.record.quality["value"] == pytest.approx(0.70)
    (event,) = store.list_events(factory_id=factory, kinds=("quality_decay",))
    assert "live accuracy 0.7 over 100 labelled rows" in event.reason


def test_quality_within_the_limit_does_not_trigger(store: Store, factory: int) -> None:
    df = frame(500, seed=4)
    ids = log(store, factory, df)
    for rid, p in zip(ids[:50], predict(df)[:50], strict=True):
        store.add_feedback(factory, rid, str(p))
    (result,) = monitor(store, quality_drop=0.1).check()
    assert result.quality.value == 1.0 and not result.quality.decayed and not result.trigger


def test_windows_resume_after_the_monitor_is_recreated(store: Store, factory: int) -> None:
    log(store, factory, frame(700, seed=5))
    assert [r.number for r in monitor(store).check()] == [1]
    assert monitor(store).check() == []  # nothing new: nothing repeated
    log(store, factory, frame(850, seed=6), start=700)
    again = monitor(store).check()
    assert [r.number for r in again] == [2, 3]
    windows = store.list_monitor_windows(factory)
    assert [w.rows for w in windows] == [500, 500, 500]
    spans = [(w.first_prediction_id, w.last_prediction_id) for w in windows]
    assert spans == [(1, 500), (501, 1000), (1001, 1500)]


def test_an_overlapping_window_is_refused(store: Store, factory: int) -> None:
    log(store, factory, frame(500, seed=7))
    (result,) = monitor(store).check()
    w = result.record
    with pytest.raises(StoreError, match="overlaps window 1"):
        store.add_monitor_window(
            factory,
            version=1,
            opened_at=w.opened_at,
            closed_at=w.closed_at,
            rows=10,
            first_prediction_id=w.last_prediction_id - 5,
            last_prediction_id=w.last_prediction_id + 4,
            drift={},
            share_drifted=0.0,
            dataset_drift=False,
            prediction_drift=False,
            quality={},
            triggered=False,
        )


def test_an_old_partial_window_closes_by_age(store: Store, factory: int) -> None:
    old = datetime.now(timezone.utc) - timedelta(hours=2)
    log(store, factory, frame(60, seed=8), created_at=old)
    assert monitor(store).check() == []  # by count only: waits
    aged = Monitor(
        store, "shop", frame(3000, seed=0), TYPES, MonitorSpec(window=500), max_age_s=3600, alerter=Alerter(None)
    )
    (result,) = aged.check()
    assert result.record.rows == 60 and result.record.drift["closed_by"] == "age"
    assert result.record.opened_at == old
    log(store, factory, frame(10, seed=9), start=60, created_at=old)
    assert aged.check() == []  # 10 rows < min_rows
