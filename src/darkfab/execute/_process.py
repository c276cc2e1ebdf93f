"""The parent's handle on one worker process: start it, measure it, read its log, kill it and its children."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

import psutil

from . import _worker
from ._pooled import Attempt

_PRELOAD = ["darkfab.execute._preload"]
_TRUNCATE_AT = 1 << 20  # a worker's log is emptied between jobs once it is this large
_KIDS_EVERY_S = 1.0  # how often the list of processes a job started is refreshed for the memory watchdog


def context() -> BaseContext:
    """Fork server where the platform has one: forks of a process that already imported the heavy modules."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # no effect once the fork server runs; it is shared per process
        return ctx
    return multiprocessing.get_context("spawn")  # pragma: no cover - Windows


@dataclass(kw_only=True)
class Running(Attempt):
    """A job on a worker process, with what the memory watchdog and the log tail need."""

    started: float
    log_offset: int
    next_memory_check: float
    peak_rss_mb: float = 0.0
    kids: list[psutil.Process] = field(default_factory=list)
    kids_checked: float = 0.0


class WorkerHandle:
    """One worker process, as the parent sees it."""

    def __init__(
        self,
        ctx: BaseContext,
        *,
        name: str,
        log_dir: str,
        threads: int,
        memory_mb: int | None,
        address_space_backstop: bool,
    ) -> None:
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log_fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.ready = False
        self.running: Running | None = None
        self.cpu_total = 0.0  # the worker's CPU seconds when it last reported
        self.spawned = time.monotonic()
        self.conn, child = ctx.Pipe(duplex=True)
        self.process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_worker.main,
            args=(child,),
            kwargs={
                "log_path": self.log_path,
                "sys_path": list(sys.path),
                "threads": threads,
                "memory_mb": memory_mb,
                "address_space_backstop": address_space_backstop,
            },
            name=f"darkfab-{name}",
        )
        try:
            with _main_module_hidden():
                self.process.start()
        finally:
            child.close()
        self.sentinel: int = self.process.sentinel
        try:
            self.ps: psutil.Process | None = psutil.Process(self.process.pid)
        except psutil.Error:  # already gone: the sentinel reports it
            self.ps = None

    # -- messages --------------------------------------------------------------------------------------

    def send(self, message: tuple[Any, ...] | bytes) -> bool:
        """Send, or return False when the worker is gone (its sentinel reports that)."""
        data = message if isinstance(message, bytes) else _worker.dumps(message)
        try:
            self.conn.send_bytes(data)
        except OSError:
            return False
        return True

    def receive(self) -> tuple[Any, ...] | None:
        """One message, or None at end of file."""
        try:
            return pickle.loads(self.conn.recv_bytes())
        except (EOFError, OSError):
            return None

    # -- log -------------------------------------------------------------------------------------------

    def log_offset(self) -> int:
        """Where the next job's output starts; the file is emptied first when it has grown large."""
        size = os.fstat(self.log_fd).st_size
        if size >= _TRUNCATE_AT:
            os.ftruncate(self.log_fd, 0)  # the worker is idle and writes with O_APPEND
            return 0
        return size

    def log_tail(self, start: int, *, max_lines: int, max_bytes: int) -> str:
        return read_tail(self.log_fd, start, max_lines=max_lines, max_bytes=max_bytes)

    # -- measurements ----------------------------------------------------------------------------------

    def rss_mb(self, running: Running, now: float) -> float:
        """Resident memory of the worker and every process its job started."""
        if self.ps is None:
            return 0.0
        if now - running.kids_checked >= _KIDS_EVERY_S:
            running.kids_checked = now
            with contextlib.suppress(psutil.Error):
                running.kids = self.ps.children(recursive=True)
        total = 0
        for proc in (self.ps, *running.kids):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 2**20

    def resting_rss_mb(self) -> float:
        """Resident memory of the worker alone, 0.0 when it cannot be read."""
        if self.ps is None:
            return 0.0
        try:
            return self.ps.memory_info().rss / 2**20
        except psutil.Error:
            return 0.0

    def cpu_seconds(self) -> float | None:
        """CPU seconds the worker used since it last reported, or None when it cannot be read."""
        if self.ps is None:
            return None
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return None
        return max(0.0, times.user + times.system - self.cpu_total)

    # -- the end ---------------------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the worker's process group, and any process its job started outside that group."""
        kids = list(self.running.kids) if self.running is not None else []
        if self.ps is not None:
            try:
                alive = self.ps.is_running()
            except psutil.Error:
                alive = False
            if alive:
                with contextlib.suppress(psutil.Error):
                    kids.extend(self.ps.children(recursive=True))
                # the group leader is alive and ours, so the group id cannot belong to anyone else
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.ps.pid, signal.SIGKILL)
                with contextlib.suppress(psutil.Error):
                    self.ps.kill()
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                kid.kill()

    def reap(self, timeout: float) -> bool:
        """Wait for the process to end; True when it has."""
        self.process.join(timeout)
        return self.process.exitcode is not None

    def release(self) -> None:
        """Close the pipe and the log, delete the log file. The process must have ended (see :meth:`reap`)."""
        self.conn.close()
        with contextlib.suppress(OSError):
            os.close(self.log_fd)
        with contextlib.suppress(OSError):
            os.unlink(self.log_path)
        if self.process.exitcode is not None:
            self.process.close()

    def death(self) -> str:
        """Why the worker ended, in words."""
        code = self.process.exitcode
        if code is None:
            return f"worker {self.name} stopped answering"
        if code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = "unknown signal"
            return f"worker {self.name} died with signal {-code} ({sig})"
        return f"worker {self.name} exited with code {code}"


def read_tail(fd: int, start: int, *, max_lines: int, max_bytes: int) -> str:
    """The last lines written to ``fd`` after offset ``start``: at most ``max_lines`` lines and ``max_bytes`` bytes.

    A very long line (faulthandler's list of extension modules, a progress bar without newlines) is shortened
    in its middle rather than allowed to push every other line out.
    """
    end = os.fstat(fd).st_size
    if end <= start or max_lines <= 0 or max_bytes <= 0:
        return ""
    begin = max(start, end - 4 * max_bytes)
    lines = os.pread(fd, end - begin, begin).decode("utf-8", "replace").splitlines(keepends=True)
    if begin > start and len(lines) > 1:
        lines = lines[1:]  # the first line was cut by the window
    longest = max(80, max_bytes // 8)
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-max_lines:]):
        if len(line) > longest:
            cut = len(line) - longest
            line = f"{line[: longest // 2]} [... {cut} characters ...] {line[-longest // 2 :]}"
        size += len(line.encode())
        if kept and size > max_bytes:
            break
        kept.append(line)
    return "".join(reversed(kept))


@contextlib.contextmanager
def _main_module_hidden() -> Iterator[None]:
    """Start a worker without it re-importing the caller's ``__main__``.

    multiprocessing re-runs the parent's main script in every non-fork child; a script that calls
    ``Factory.run`` at top level, without an ``if __name__ == "__main__":`` guard, would then start workers
    from inside workers. Workers only need importable trainers, so the main module is hidden while one starts.
    """
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved: dict[str, Any] = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)
