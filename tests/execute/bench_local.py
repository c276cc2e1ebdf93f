"""Trivial trials per second through the local pool, against a cold process per trial.

Run: ``.venv/bin/python -m tests.execute.bench_local`` (not collected by pytest; prints, asserts nothing).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection

import psutil

from darkfab.execute import Limits, LocalExecutor
from darkfab.testing.executor_contract import digits_payload, keep_busy, request
from darkfab.train import TrialRequest, WorkerPayload, prepare, run_trial

DUMMY = ("dummy", "sklearn.dummy:DummyClassifier")


def in_process(payload: WorkerPayload, n: int) -> float:
    state = prepare(payload)
    run_trial(state, request(0, *DUMMY))
    t0 = time.perf_counter()
    for i in range(n):
        run_trial(state, request(i, *DUMMY))
    return n / (time.perf_counter() - t0)


def _cpu(pids: list[int]) -> float:
    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def pool(payload: WorkerPayload, workers: int, n: int) -> tuple[float, float, float]:
    """The factory's pattern: keep every worker busy, poll for what ended, submit the next.

    Returns trials per second, the parent's CPU milliseconds per job, and the workers' CPU milliseconds per
    job spent outside the trial itself (receiving, measuring, sending).
    """
    with LocalExecutor() as executor:
        executor.start(payload, workers=workers, limits=Limits(timeout_s=60, memory_mb=4096))
        pids = list(executor.worker_pids.values())
        t0, cpu0, wcpu0 = time.perf_counter(), time.process_time(), _cpu(pids)
        in_trials = sum(done.cpu_seconds for done in keep_busy(executor, n, lambda i: request(i, *DUMMY)))
        wall, cpu, wcpu = time.perf_counter() - t0, time.process_time() - cpu0, _cpu(pids) - wcpu0
        return n / wall, 1000 * cpu / n, 1000 * (wcpu - in_trials) / n


def _cold_target(conn: Connection, payload_bytes: bytes, req: TrialRequest) -> None:
    state = prepare(pickle.loads(payload_bytes))
    conn.send_bytes(pickle.dumps(run_trial(state, req), protocol=5))


def cold_process(payload: WorkerPayload, n: int, method: str) -> float:
    """A new multiprocessing Process per trial (the payload travels with each)."""
    ctx = multiprocessing.get_context(method)
    data = pickle.dumps(payload, protocol=5)
    t0 = time.perf_counter()
    for i in range(n):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_cold_target, args=(child, data, request(i, *DUMMY)))
        proc.start()
        child.close()
        pickle.loads(parent.recv_bytes())
        proc.join()
        parent.close()
    return n / (time.perf_counter() - t0)


_SCRIPT = """
import pickle, sys
from darkfab.train import prepare, run_trial
payload, req = pickle.load(open(sys.argv[1], "rb"))
out = run_trial(prepare(payload), req)
sys.stdout.buffer.write(pickle.dumps(out, protocol=5))
"""


def cold_subprocess(payload: WorkerPayload, n: int) -> float:
    """A new Python interpreter per trial."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "job.pkl")
        with open(path, "wb") as f:
            pickle.dump((payload, request(0, *DUMMY)), f, protocol=5)
        t0 = time.perf_counter()
        for _ in range(n):
            out = subprocess.run([sys.executable, "-c", _SCRIPT, path], capture_output=True, check=True)
            pickle.loads(out.stdout)
        return n / (time.perf_counter() - t0)


def main() -> None:
    payload = digits_payload(rows=900, latency_rows=0)
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    rate = in_process(payload, 2000)
    print(f"in process, no executor      : {rate:8.1f} trials/s ({1000 / rate:.3f} ms per trial)")
    pool(payload, 1, 100)  # starts the fork server
    for workers in (1, 2):
        for _ in range(3):
            pooled, parent_ms, worker_ms = pool(payload, workers, 3000)
            print(
                f"local pool, {workers} worker(s)       : {pooled:8.1f} trials/s; executor CPU per job: "
                f"parent {parent_ms:.3f} ms, worker outside the trial {worker_ms:.3f} ms"
            )
    print(f"new forkserver Process/trial : {cold_process(payload, 30, 'forkserver'):8.1f} trials/s")
    print(f"new spawn Process/trial      : {cold_process(payload, 5, 'spawn'):8.1f} trials/s")
    print(f"new subprocess/trial         : {cold_subprocess(payload, 5):8.1f} trials/s")


if __name__ == "__main__":
    main()
