"""Trivial trials per second through the Ray executor, against the local pool, with 1 and 2 workers.

The job is the one of ``tests/execute/bench_local.py``: a DummyClassifier on 900 rows of digits, so the
numbers measure the executor, not training. Ray runs on this machine (a one-node Ray started once, shared
by every round). Run: ``.venv/bin/python benchmarks/ray_overhead.py [trials]``; prints a table, asserts nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable

from darkfab.execute import Executor, Limits, LocalExecutor, RayExecutor
from darkfab.testing.executor_contract import digits_payload, keep_busy, request
from darkfab.train import WorkerPayload

DUMMY = ("dummy", "sklearn.dummy:DummyClassifier")


def rate(make: Callable[[], Executor], payload: WorkerPayload, workers: int, n: int) -> tuple[float, float, float]:
    """The factory's pattern: keep every worker busy, poll for what ended, submit the next.

    Returns the start time in seconds, trials per second, and the driver's CPU milliseconds per trial.
    """
    with make() as executor:
        t0 = time.perf_counter()
        executor.start(payload, workers=workers, limits=Limits(timeout_s=60, memory_mb=4096))
        started = time.perf_counter() - t0
        t0, cpu0 = time.perf_counter(), time.process_time()
        keep_busy(executor, n, lambda i: request(i, *DUMMY))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return started, n / wall, 1000 * cpu / n


def main() -> None:
    import ray

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    payload = digits_payload(rows=900, latency_rows=0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}, ray {ray.__version__}, {n} trials a round")
    rate(LocalExecutor, payload, 1, 50)  # warm-up: the fork server, Ray's worker pool
    rate(RayExecutor, payload, 1, 50)
    print(f"{'executor':<8} {'workers':>7} {'start s':>8} {'trials/s':>9} {'ms/trial':>9} {'driver CPU ms/trial':>20}")
    for workers in (1, 2):
        for name, make in (("local", LocalExecutor), ("ray", RayExecutor)):
            for _ in range(2):
                started, per_s, cpu_ms = rate(make, payload, workers, n)
                print(f"{name:<8} {workers:>7} {started:>8.2f} {per_s:>9.1f} {1000 / per_s:>9.2f} {cpu_ms:>20.3f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
