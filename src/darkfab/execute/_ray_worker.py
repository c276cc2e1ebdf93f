"""The actor side of the Ray executor: the warm worker actor, its memory watchdog, and the report mailbox."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import shutil
import signal
import sys
import threading
import time
import traceback
from importlib import import_module
from typing import Any

import numpy as np
import psutil

from ..errors import SpecError
from ..train import WorkerPayload, prepare
from ._process import read_tail
from ._worker import THREAD_VARS, Output, describe, redirect_output, run_guarded, run_job

TAKE_S = 10.0  # the longest one long-poll of the mailbox waits before the executor asks again
GET_S = 10.0  # the longest the executor waits on Ray for a verdict, a log tail or a clean-up
_KIDS_EVERY_S = 1.0
FATAL = {  # faulthandler's words for the signal that ended a process
    "Segmentation fault": "SIGSEGV",
    "Bus error": "SIGBUS",
    "Floating-point exception": "SIGFPE",
    "Floating point exception": "SIGFPE",
    "Aborted": "SIGABRT",
    "Illegal instruction": "SIGILL",
}
_INSTALL = "fix: pip install 'darkfab[ray]'"
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Ray colours the names in its messages


def import_ray() -> Any:
    """Ray, or a SpecError that says how to install it."""
    try:
        import ray
    except ImportError as err:
        raise SpecError(f"execution.backend 'ray' needs Ray, which is not installed ({err}); {_INSTALL}") from err
    return ray


# -- inside the cluster: the mailbox, the worker actor, the log reader -------------------------------------


class Mailbox:
    """Carries intermediate reports and their answers, and the verdict of a watchdog that killed its actor.

    An async Ray actor; every message names the attempt's token, unique per job attempt.
    """

    def __init__(self) -> None:
        self._reports: list[tuple[str, int, np.ndarray]] = []
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._notes: dict[str, tuple[str, float]] = {}
        self._ended: set[str] = set()
        self._wake: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def report(self, token: str, step: int, predictions: np.ndarray) -> bool:
        """Called by a trial; returns the executor's answer: True to stop."""
        if token in self._ended:
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        self._reports.append((token, step, predictions))
        self._event().set()
        return await future

    async def take(self, timeout: float) -> list[tuple[str, int, np.ndarray]]:
        """The reports waiting for an answer, as soon as there is one, or an empty list after ``timeout``."""
        if not self._reports:
            wake = self._event()
            wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
        reports, self._reports = self._reports, []
        return reports

    async def answer(self, token: str, stop: bool) -> None:
        future = self._waiting.pop(token, None)
        if future is not None and not future.done():
            future.set_result(bool(stop))

    async def note(self, token: str, error: str, peak_rss_mb: float) -> None:
        """A watchdog is about to kill its actor over the memory limit."""
        self._notes[token] = (error, peak_rss_mb)

    async def end(self, token: str) -> tuple[str, float] | None:
        """The attempt is over (killed or dead): release its report, return its watchdog verdict if any."""
        self._ended.add(token)
        self._reports = [r for r in self._reports if r[0] != token]
        await self.answer(token, True)
        return self._notes.pop(token, None)


def _private_rss_mb(proc: psutil.Process) -> float:
    """Resident memory less what is shared with the object store (RssShmem), in MB."""
    rss = proc.memory_info().rss
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{proc.pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"RssShmem:"):
                rss -= int(line.split()[1]) * 1024
                break
    return max(0, rss) / 2**20


class _Watchdog:
    """Kills its own actor when a job's memory passes the limit; the mailbox learns why first."""

    def __init__(self, mailbox: Any, limit_mb: int, every_s: float) -> None:
        self.mailbox = mailbox
        self.limit_mb = limit_mb
        self.every_s = every_s
        self.me = psutil.Process()
        self.token: str | None = None
        self.peak_mb = 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="darkfab-memory-watch", daemon=True).start()

    def begin(self, token: str) -> None:
        with self._lock:
            self.token, self.peak_mb = token, 0.0

    def end(self) -> float:
        with self._lock:
            self.token = None
            return self.peak_mb

    def _watch(self) -> None:
        kids: list[psutil.Process] = []
        kids_checked = 0.0
        while True:
            time.sleep(self.every_s)
            if self.token is None:
                continue
            now = time.monotonic()
            if now - kids_checked >= _KIDS_EVERY_S:
                kids_checked = now
                with contextlib.suppress(psutil.Error):
                    kids = self.me.children(recursive=True)
            rss = _private_rss_mb(self.me)
            for kid in kids:
                with contextlib.suppress(psutil.Error):
                    rss += kid.memory_info().rss / 2**20
            with self._lock:
                token = self.token
                if token is None:
                    continue
                self.peak_mb = max(self.peak_mb, rss)
            if rss > self.limit_mb:
                self._kill(token, rss, kids)

    def _kill(self, token: str, rss: float, kids: list[psutil.Process]) -> None:
        import ray

        error = (
            f"memory: resident memory reached {rss:.0f} MB, past the limit of {self.limit_mb} MB "
            "(limits.memory_mb); the worker was killed"
        )
        print(f"darkfab: {error}", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            ray.get(self.mailbox.note.remote(token, error, rss), timeout=GET_S)
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                kid.kill()
        os.kill(os.getpid(), signal.SIGKILL)


class RayWorker:
    """One Ray actor: prepares the payload once, then runs jobs on its main thread, one at a time."""

    def __init__(
        self,
        payload: WorkerPayload,
        *,
        mailbox: Any,
        log_dir: str,
        name: str,
        sys_path: list[str],
        memory_mb: int | None,
        memory_check_s: float,
        tail_lines: int,
        tail_bytes: int,
    ) -> None:
        os.makedirs(log_dir, exist_ok=True)
        self.log_path = os.path.join(log_dir, f"{name}.log")
        redirect_output(self.log_path)
        self.log_fd = os.open(self.log_path, os.O_RDONLY)
        for path in reversed(sys_path):  # the driver's import path, where this node has it (tests.helpers...)
            if path not in sys.path and os.path.isdir(path):
                sys.path.insert(0, path)
        for var in THREAD_VARS:
            os.environ[var] = str(max(1, int(payload.threads)))
        self.mailbox = mailbox
        self.tail = {"max_lines": tail_lines, "max_bytes": tail_bytes}
        self.memory_note = f" (the memory limit is {memory_mb} MB, limits.memory_mb)" if memory_mb else ""
        self.output = Output()
        self.watchdog = _Watchdog(mailbox, memory_mb, memory_check_s) if memory_mb else None
        self.failed = ""
        try:
            import_module("darkfab.execute._preload")  # what the local pool's fork server imports once for all
            self.state = prepare(payload)
        except BaseException as err:  # told by ready(), with the traceback from the log
            self.failed = describe(err)
            traceback.print_exc()

    def ready(self) -> tuple[str, int, str, str, float, float]:
        """(why it failed or '', pid, node id, log path, resident MB at rest, CPU seconds so far)."""
        import ray

        self.output.flush()
        node = ray.get_runtime_context().get_node_id()
        pid, rss, cpu = os.getpid(), _private_rss_mb(psutil.Process()), time.process_time()
        failed = f"{self.failed}\n{read_tail(self.log_fd, 0, **self.tail)}".rstrip() if self.failed else ""
        return failed, pid, node, self.log_path, rss, cpu

    def run(self, token: str, kind: str, job_id: str, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """Run one job: (ok, output, failure, error, cpu_seconds, peak_rss_mb, log_tail, cpu_total)."""
        self.output.flush()
        os.ftruncate(1, 0)  # this job's output starts here; fd 1 and 2 append to the same file
        max0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        cpu0 = time.process_time()
        if self.watchdog is not None:
            self.watchdog.begin(token)

        ok, output, failure, error = run_guarded(
            lambda: run_job(self.state, kind, args, self._reporter(token)), self.memory_note
        )
        watched = self.watchdog.end() if self.watchdog is not None else 0.0
        cpu_total = time.process_time()
        max1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = max1 / 1024.0 if max1 > max0 else _private_rss_mb(psutil.Process())
        self.output.flush()
        tail = read_tail(self.log_fd, 0, **self.tail)
        return ok, output, failure, error, cpu_total - cpu0, max(peak, watched), tail, cpu_total

    def _reporter(self, token: str) -> Any:
        import ray

        def report(step: int, predictions: np.ndarray) -> bool:
            self.output.flush()
            return bool(ray.get(self.mailbox.report.remote(token, int(step), np.asarray(predictions))))

        return report


def read_log(path: str, max_lines: int, max_bytes: int) -> str:
    """The tail of a log file on this node, which is deleted after (its actor is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return ""
    try:
        return read_tail(fd, 0, max_lines=max_lines, max_bytes=max_bytes)
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)


def remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
