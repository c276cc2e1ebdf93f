"""How fast the console's pages answer with many trials in the store (issue 9 asks under 300 ms at 10,000).

Fills a fresh SQLite store through the Store API (one factory, one campaign of ``--trials`` finished
trials with metrics and a reward breakdown, a registered champion, ``--windows`` monitor windows), serves
the console with uvicorn on loopback, and prints the median of ``--repeat`` requests per page.

Run: ``.venv/bin/python benchmarks/console.py [--trials 10000] [--repeat 7]``. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from darkfab.store import Store
from darkfab.ui import create_app

TRAINERS = ("random_forest", "lightgbm", "logistic_regression")
PROPOSERS = ("tpe", "random", "llm")


def fill(store: Store, trials: int, windows: int) -> tuple[int, int]:
    rng = random.Random(0)
    f = store.ensure_factory("bench", {"budget": {"trials": trials}})
    c = store.create_campaign(f.id, budget={"trials": trials}, trigger="first", seed=0, data_fingerprint="f" * 64)
    for i in range(trials):
        params = {"n_estimators": rng.randint(10, 500), "max_depth": rng.randint(2, 20), "lr": rng.random()}
        t = store.add_trial(
            c.id,
            proposer=PROPOSERS[i % 3],
            trainer=TRAINERS[i % 3],
            params=params,
            reason=f"sampled after {i} trials",
            start_as="bench-worker",
        )
        acc = 0.7 + 0.25 * rng.random()
        if i % 20 == 19:
            store.finish_trial(t.id, state="failed", error="ValueError: bench", failure_kind="trainer")
            continue
        store.finish_trial(
            t.id,
            state="completed",
            value=acc,
            reward=acc,
            feasible=True,
            metrics={"accuracy": acc, "f1": acc - 0.01, "latency_p95_ms": 5 * rng.random()},
            breakdown={"terms": {"accuracy": {"value": acc, "utility": acc, "weight": 1.0, "contribution": acc}}},
            resources={"wall_seconds": rng.random(), "cpu_seconds": rng.random()},
        )
    best = store.list_trials(campaign_id=c.id, states=("completed",))[0]
    store.add_model_version(
        f.id,
        artifact_hash="a" * 64,
        artifact_path="sha256/aa/" + "a" * 64,
        trial_id=best.id,
        trainer=best.trainer,
        params=best.params,
        metrics={
            "valid": best.metrics or {},
            "sealed_test": {"metric": "accuracy", "score": 0.9, "low": 0.85, "high": 0.94},
        },
        lineage={"campaign": 1, "data_fingerprint": "f" * 64, "packages": {"python": "3.11"}},
        reason="bench champion",
        aliases=("champion",),
    )
    store.finish_campaign(c.id, status="finished", summary={"stopped_because": "bench"}, reason="bench")
    start = best.created_at
    for w in range(windows):
        store.add_monitor_window(
            f.id,
            version=1,
            opened_at=start + timedelta(minutes=w),
            closed_at=start + timedelta(minutes=w + 1),
            rows=200,
            first_prediction_id=w * 200 + 1,
            last_prediction_id=(w + 1) * 200,
            drift={"columns": [{"column": f"x{k}", "drifted": k < w % 5} for k in range(20)]},
            share_drifted=(w % 5) / 20,
            dataset_drift=False,
            prediction_drift=False,
            quality={"metric": "accuracy", "value": 0.88, "champion": 0.9},
            triggered=False,
            reason="",
        )
    return c.id, best.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store(str(Path(tmp) / "console.db")) as store:
        t0 = time.perf_counter()
        campaign, trial = fill(store, args.trials, args.windows)
        print(f"filled {args.trials} trials and {args.windows} windows in {time.perf_counter() - t0:.1f} s")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(store, token="x" * 32), port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        pages = {
            "factories": "/",
            "campaign (sorted by reward, page 1)": f"/campaigns/{campaign}",
            "campaign (sorted by number, page 100)": f"/campaigns/{campaign}?sort=number&order=asc&page=100",
            "campaign charts.json (cached)": f"/campaigns/{campaign}/charts.json",
            "campaign (sorted by wall s, page 100)": f"/campaigns/{campaign}?sort=wall&order=asc&page=100",
            "trial": f"/trials/{trial}",
            "model version": "/factories/bench/versions/1",
            "model card (Markdown)": "/factories/bench/versions/1/card.md",
            "monitor": "/factories/bench/monitor",
            "timeline (newest 200, chain check cached)": "/timeline",
            "timeline (one kind)": "/timeline?kind=alias_set",
        }
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            for name, path in (
                ("first campaign page (one page of trials)", f"/campaigns/{campaign}"),
                ("first campaign charts.json (computes them)", f"/campaigns/{campaign}/charts.json"),
                ("first timeline (starts the chain check)", "/timeline"),
            ):
                t0 = time.perf_counter()
                client.get(path).raise_for_status()
                print(f"{name:45s} once   {(time.perf_counter() - t0) * 1e3:7.0f} ms")
            for name, path in pages.items():
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append(time.perf_counter() - t0)
                print(f"{name:45s} median {statistics.median(times) * 1e3:7.0f} ms  (min {min(times) * 1e3:.0f})")
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
