"""A drift that leads, by itself, to a new champion: serve, watch, retrain, canary, promote."""

from __future__ import annotations

from pathlib import Path

import httpx

from darkfab import Factory
from darkfab.runtime import Lifecycle, retraining_frame

from .conftest import Hook, Traffic, world


def _kinds_in_order(kinds: list[str], wanted: list[str]) -> bool:
    at = 0
    for k in kinds:
        if at < len(wanted) and k == wanted[at]:
            at += 1
    return at == len(wanted)


def test_a_drift_leads_by_itself_to_a_new_champion(factory_file: Path, tmp_path: Path, webhook: Hook) -> None:
    store = str(tmp_path / "loop.db")
    factory = Factory.from_file(factory_file, store=store)
    first = factory.run()
    assert first.champion is not None and first.champion.version == 1
    lc = Lifecycle(factory, check_every_s=0.2, poll_interval_s=0.2, fresh_labels=80, fresh_wait_s=30, seed=0)
    with lc:
        fid = lc.factory_id
        traffic = Traffic(lc.url, "shifting")
        try:
            traffic.send(world(80, drifted=False, seed=2))
            assert lc.wait(lambda: len(factory.store.list_monitor_windows(fid)) >= 2, timeout=20)
            assert len(factory.store.list_campaigns(fid)) == 1  # stationary traffic starts nothing
            assert not any(w.triggered for w in factory.store.list_monitor_windows(fid))

            drifted = world(400, drifted=True, seed=3)
            at = 0
            while not (lc.retraining or lc.results) and at < 300:
                traffic.send(drifted.iloc[at : at + 20])
                at += 20
            assert lc.retraining or lc.results, "the drift never started a campaign"
            scraped = httpx.get(f"{lc.url}/metrics", timeout=10).text  # the drift scores are on /metrics too
            assert "darkfab_dataset_drift{" in scraped and 'darkfab_drift_statistic{feature="x1"' in scraped
            traffic.send(drifted.iloc[at : at + 100])  # fresh labels the retrain waits for
            assert lc.wait(lambda: bool(lc.results or lc.failures), timeout=120)
            assert not lc.failures
            assert lc.results, "the drift never started a campaign"
            second = lc.results[0]
            assert second.champion is not None and second.champion.alias == "challenger"
            assert lc.wait(lambda: traffic.routing()["challenger"] is not None, timeout=10)

            more = world(400, drifted=True, seed=4)
            at = 0
            while factory.store.get_model_version(fid, "champion").version == 1 and at < len(more):
                traffic.send(more.iloc[at : at + 10])
                at += 10
            assert lc.wait(lambda: factory.store.get_model_version(fid, "champion").version == 2, timeout=10)
        finally:
            traffic.close()
    steps = lc.timeline()
    kinds = [s.kind for s in steps]
    assert _kinds_in_order(
        kinds,
        [
            "drift_detected",
            "lifecycle_retrain_started",
            "campaign_started",
            "gate_verdict",
            "registered",
            "lifecycle_retrain_finished",
            "challenger_promoted",
        ],
    ), kinds
    started = [s for s in steps if s.kind == "campaign_started"]
    assert started[-1].data["trigger"] == "drift" and started[-1].campaign == 2
    moved = [(s.data.get("alias"), s.data.get("version")) for s in steps if s.kind == "alias_set"]
    assert ("challenger", 2) in moved and moved.index(("challenger", 2)) < moved.index(("champion", 2))
    assert kinds[-1] == "lifecycle_serving_stopped"
    assert [a["kind"] for a in webhook.received][:1] == ["drift"]

    frame, live = retraining_frame(factory.spec, factory.store, fid)
    assert live > 0 and len(frame) == 400 + live and list(frame.columns) == ["x1", "x2", "x3", "x4", "y"]
    factory.close()
