"""Alerts reach a real webhook on loopback; a failing or hanging one never raises and is counted."""

from __future__ import annotations

import logging
import time

import numpy as np
import pandas as pd
import pytest

from darkfab.monitor import ALERT_KINDS, Alerter, Monitor
from darkfab.spec import MonitorSpec
from darkfab.store import Store

from .conftest import Hook


def test_every_kind_is_posted_as_json_and_logged(webhook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(webhook.url)
    with caplog.at_level(logging.WARNING, logger="darkfab.monitor"):
        for kind in ALERT_KINDS:
            assert alerter.send(kind, factory="shop", reason=f"{kind} happened", data={"n": np.int64(3)})
    assert [p["kind"] for p in webhook.received] == list(ALERT_KINDS)
    first = webhook.received[0]
    assert set(first) == {"kind", "factory", "reason", "data", "time"}
    assert first["factory"] == "shop" and first["reason"] == "drift happened" and first["data"] == {"n": 3}
    assert first["time"].endswith("+00:00")
    assert (alerter.sent, alerter.failed) == (len(ALERT_KINDS), 0)
    assert sum("alert rollback for factory shop" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("webhook", ["fail"], indirect=True)
def test_a_failing_webhook_is_retried_then_counted(webhook: Hook, caplog: pytest.LogCaptureFixture) -> None:
    alerter = Alerter(webhook.url, retries=2, backoff=0.0)
    with caplog.at_level(logging.WARNING, logger="darkfab.monitor"):
        assert alerter.send("campaign_failed", factory="shop", reason="boom") is False
    assert webhook.hits == 3  # one try and two retries
    assert (alerter.sent, alerter.failed) == (0, 1)
    assert any("could not deliver the campaign_failed alert" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("webhook", ["hang"], indirect=True)
def test_a_hanging_webhook_times_out_without_raising(webhook: Hook) -> None:
    alerter = Alerter(webhook.url, timeout=0.3, retries=1, backoff=0.0)
    started = time.monotonic()
    assert alerter.send("budget_reached", factory="shop", reason="100 trials") is False
    assert time.monotonic() - started < 5  # two attempts of 0.3 s, not forever
    assert webhook.hits == 2 and alerter.failed == 1


def test_an_unreachable_webhook_is_counted() -> None:
    alerter = Alerter("http://127.0.0.1:9/alerts", timeout=0.5, retries=0)
    assert alerter.send("drift", factory="shop", reason="x") is False
    assert alerter.failed == 1


def test_no_webhook_logs_only_and_bad_kinds_or_urls_are_refused() -> None:
    assert Alerter(None).send("drift", factory="f", reason="r")
    with pytest.raises(ValueError, match="alert kind must be one of"):
        Alerter(None).send("bored", factory="f", reason="r")
    with pytest.raises(ValueError, match="http"):
        Alerter("ftp://example.org")


def test_the_monitor_alerts_the_webhook_from_the_file(store: Store, webhook: Hook) -> None:
    fid = store.ensure_factory("shop", {"name": "shop"}).id
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"x": rng.normal(size=2000), "y": rng.normal(size=2000)})
    rows = [
        {"factory_id": fid, "version": 1, "request_id": f"r{i}", "features": {"x": x + 4.0, "y": x}, "output": 1}
        for i, x in enumerate(rng.normal(size=500).tolist())
    ]
    store.log_predictions(rows)
    spec = MonitorSpec(window=500, webhook=webhook.url)
    (result,) = Monitor(store, "shop", reference, {"x": "numeric", "y": "numeric"}, spec).check()
    assert result.trigger
    (alert,) = webhook.received
    assert alert["kind"] == "drift" and alert["factory"] == "shop"
    assert alert["data"]["drifted_columns"] == ["x"] and alert["data"]["window"] == 1
