"""Cost of the store's hottest calls (add, start and finish a trial) on SQLite, per call.

Run: ``.venv/bin/python benchmarks/store_calls.py [--calls 200]``. Prints the figures; asserts nothing.
(It was a test that only printed timings; a test must be able to fail, so it lives here now.)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from darkfab.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    n = parser.parse_args().calls
    with tempfile.TemporaryDirectory() as tmp, Store(str(Path(tmp) / "timing.db")) as store:
        f = store.ensure_factory("timing", {})
        c = store.create_campaign(f.id, budget={}, trigger="t", seed=0, data_fingerprint="")
        t0 = time.perf_counter()
        ids = [store.add_trial(c.id, proposer="p", trainer="t", params={"i": i}, reason="r").id for i in range(n)]
        t1 = time.perf_counter()
        for tid in ids:
            store.start_trial(tid, worker="w")
        t2 = time.perf_counter()
        for tid in ids:
            store.finish_trial(tid, state="completed", value=0.5, metrics={"acc": 0.5}, reward=0.5, feasible=True)
        t3 = time.perf_counter()
    print(
        f"SQLite cost per call over {n} calls: add_trial {(t1 - t0) / n * 1e3:.3f} ms, "
        f"start_trial {(t2 - t1) / n * 1e3:.3f} ms, finish_trial {(t3 - t2) / n * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
