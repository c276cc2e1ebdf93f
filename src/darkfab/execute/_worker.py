"""The worker process of the local pool: receive the payload once, then run jobs until told to stop.

Runs in a child started by multiprocessing's forkserver. Everything the worker prints, from Python, C code
or its own subprocesses, lands in its log file: file descriptors 1 and 2 point there. The parent reads the
tail of that file for each job, also when it had to kill the worker.

The protocol is a list of tuples pickled with protocol 5 over one duplex pipe; the first item names the
message. Parent to worker: ``(TRAIN, job_id, request)``, ``(PREDICT, job_id, artifact, split)``,
``(ANSWER, stop)`` while a trial waits in ``report``, ``(EXIT,)``. Worker to parent: ``(READY, cpu_total)``
or ``(FAILED, error)`` after the payload, ``(REPORT, job_id, step, predictions)``, and
``(DONE, job_id, ok, output, failure, error, cpu_seconds, peak_rss_mb, cpu_total)``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import faulthandler
import multiprocessing
import os
import pickle
import resource
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from ..errors import TrialPruned
from ..train import WorkerState, predict, prepare, run_trial
from . import _sandbox
from ._child import THREAD_VARS

TRAIN = "train"
PREDICT = "predict"
ANSWER = "answer"
EXIT = "exit"
READY = "ready"
FAILED = "failed"
REPORT = "report"
DONE = "done"

_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 4096 / 2**20
_MAX_ERROR = 500


def dumps(message: tuple[Any, ...]) -> bytes:
    return pickle.dumps(message, protocol=5)


def run_job(state: WorkerState, kind: str, args: tuple[Any, ...], report: Callable[[int, np.ndarray], bool]) -> Any:
    """One job in a worker, local or Ray: ``(request,)`` to train, ``(artifact, split)`` to predict. Script code
    (a script trial, or a script model's artifact, whose loading runs its code) goes to the sandbox."""
    if kind == TRAIN and _sandbox.is_script_request(args[0]):
        return _sandbox.sandboxed_trial(state, args[0], report)
    if kind == TRAIN:
        return run_trial(state, args[0], report)
    if _sandbox.is_script_artifact(args[0]):
        return _sandbox.sandboxed_predict(state, args[0], args[1])
    return predict(state, args[0], args[1])


def run_guarded(work: Callable[[], Any], memory_note: str = "") -> tuple[bool, Any, str | None, str | None]:
    """Run one job's code: (ok, output, failure, error). Failures are classified; the traceback goes to the log."""
    try:
        return True, work(), None, None
    except TrialPruned as err:
        return False, None, "pruned", describe(err)
    except MemoryError as err:
        traceback.print_exc()
        return False, None, "memory", describe(err) + memory_note
    except BaseException as err:  # the job's own code may raise anything, SystemExit included
        traceback.print_exc()
        return False, None, "exception", describe(err)


def describe(err: BaseException) -> str:
    """One line: ``ExceptionType: first line of the message``."""
    text = str(err).strip().splitlines()
    line = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 3] + "..."


class Output:
    """Flushes every stream that may hold output, so the log file is complete before a job is reported."""

    def __init__(self) -> None:
        path = ctypes.util.find_library("c")
        try:
            self._libc: Any = ctypes.CDLL(path) if path else None
        except OSError:  # pragma: no cover - no C library to flush
            self._libc = None

    def flush(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        if self._libc is not None:
            self._libc.fflush(None)


def redirect_output(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # the streams live as long as the process
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    faulthandler.enable(file=sys.stderr, all_threads=False)


def _orphaned(log_path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(log_path)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(log_path))
    os._exit(70)


def _watch_parent(log_path: str) -> None:
    """Exit at once when the parent process dies, even while a job holds the main thread in C code.

    The parent cannot clean up after a SIGKILL, so the worker deletes its log, and the last one the folder.
    """
    parent = multiprocessing.parent_process()
    sentinel = parent.sentinel if parent is not None else None
    if sentinel is None:  # pragma: no cover - every start method since Python 3.8 provides it
        return

    def watch() -> None:
        wait([sentinel])
        _orphaned(log_path)

    threading.Thread(target=watch, name="darkfab-parent-watch", daemon=True).start()


def _limit_address_space(memory_mb: int | None, threads: int) -> None:
    """A backstop for allocations too fast for the parent's RSS watchdog: they fail with MemoryError.

    Generous on purpose: libraries reserve address space they never touch (thread stacks, malloc arenas).
    """
    if not memory_mb:
        return
    try:
        with open("/proc/self/statm", "rb") as f:
            vms_mb = int(f.read().split()[0]) * _PAGE_MB
    except OSError:  # pragma: no cover - not Linux
        return
    limit = int((vms_mb + 2 * memory_mb + 256 * (threads + 1)) * 2**20)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


class _Worker:
    def __init__(self, conn: Connection, state: WorkerState, memory_mb: int | None) -> None:
        self.conn = conn
        self.state = state
        self.memory_note = f" (the memory limit is {memory_mb} MB, limits.memory_mb)" if memory_mb else ""
        self.output = Output()
        try:
            self._statm: int | None = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:  # pragma: no cover - not Linux
            self._statm = None

    def rss_mb(self) -> float:
        if self._statm is None:  # pragma: no cover - not Linux
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return int(os.pread(self._statm, 64, 0).split()[1]) * _PAGE_MB

    def run(self) -> None:
        conn = self.conn
        while True:
            message = pickle.loads(conn.recv_bytes())
            kind = message[0]
            if kind == EXIT:
                return
            if kind in (TRAIN, PREDICT):
                conn.send_bytes(self.job(message))
            # anything else (a late ANSWER for a job that already ended) needs no reply

    def job(self, message: tuple[Any, ...]) -> bytes:
        kind, job_id = message[0], message[1]
        max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0 = time.process_time()

        ok, output, failure, error = run_guarded(
            lambda: run_job(self.state, kind, message[2:], self._reporter(job_id)), self.memory_note
        )
        cpu_total = time.process_time()
        max1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # a new lifetime peak was set during this job; otherwise the job's peak is at most the current size
        peak = max1 / 1024.0 if max1 > max0 else self.rss_mb()
        self.output.flush()
        done = (DONE, job_id, ok, output, failure, error, cpu_total - cpu0, peak, cpu_total)
        try:
            return dumps(done)
        except BaseException as err:
            traceback.print_exc()
            self.output.flush()
            error = f"cannot send the result back: {describe(err)}"
            return dumps((DONE, job_id, False, None, "exception", error, cpu_total - cpu0, peak, cpu_total))

    def _reporter(self, job_id: str) -> Any:
        conn = self.conn

        def report(step: int, predictions: np.ndarray) -> bool:
            self.output.flush()
            conn.send_bytes(dumps((REPORT, job_id, int(step), np.asarray(predictions))))
            while True:
                message = pickle.loads(conn.recv_bytes())
                if message[0] == ANSWER:
                    return bool(message[1])
                if message[0] == EXIT:
                    os._exit(0)

        return report


def main(
    conn: Connection,
    *,
    log_path: str,
    sys_path: list[str],
    threads: int,
    memory_mb: int | None,
    address_space_backstop: bool,
) -> None:
    """Entry point of a worker process."""
    os.setpgrp()  # the parent kills the whole group: the worker and anything the job started
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the factory's to handle
    redirect_output(log_path)
    _watch_parent(log_path)
    sys.path[:] = sys_path
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    try:
        state = prepare(pickle.loads(conn.recv_bytes()))
        if address_space_backstop:
            _limit_address_space(memory_mb, threads)
    except EOFError:
        _orphaned(log_path)
    except BaseException as err:
        traceback.print_exc()
        sys.stderr.flush()
        conn.send_bytes(dumps((FAILED, describe(err))))
        return
    conn.send_bytes(dumps((READY, time.process_time())))
    try:
        _Worker(conn, state, memory_mb).run()
    except (EOFError, BrokenPipeError):  # the parent is gone
        _orphaned(log_path)
