"""Estimators that misbehave on purpose, to test executors. Select them by import path::

    TrainerSpec(name="hang", estimator="darkfab.testing.faulty:Hang")

Each one fits the class priors (or the mean, for regression) unless it hangs, crashes or raises first, so
the ones that finish give a valid model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

_FITS = 0  # fits in this process, across jobs: shows that a worker is reused


def _libc() -> Any:
    path = ctypes.util.find_library("c")
    return ctypes.CDLL(path) if path else None


class Prior(ClassifierMixin, BaseEstimator):
    """Predicts the class frequencies of the training labels, or their mean for a float target."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Prior:
        y = np.asarray(y)
        self.mean_ = float(np.mean(y)) if len(y) else 0.0
        if y.dtype.kind in "iub":
            self.classes_, counts = np.unique(y, return_counts=True)
            self.priors_ = counts / counts.sum()
        else:
            self.classes_ = np.zeros(0)
            self.priors_ = np.zeros(0)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.tile(self.priors_, (len(X), 1))

    def predict(self, X: np.ndarray) -> np.ndarray:
        if len(self.classes_):
            return np.full(len(X), self.classes_[int(np.argmax(self.priors_))])
        return np.full(len(X), self.mean_)


class Probe(Prior):
    """Records where and how it ran, in attributes that travel back inside the artifact.

    Args:
        spin_s: CPU seconds to burn before fitting.
    """

    def __init__(self, spin_s: float = 0.0) -> None:
        self.spin_s = spin_s

    def fit(self, X: np.ndarray, y: np.ndarray) -> Probe:
        global _FITS
        _FITS += 1
        end = time.process_time() + self.spin_s
        while time.process_time() < end:
            pass
        self.pid_ = os.getpid()
        self.fit_number_ = _FITS  # 1, 2, 3... within one worker process
        self.x_id_ = id(X)  # the same array object job after job when the worker keeps its prepared data
        self.omp_threads_ = os.environ.get("OMP_NUM_THREADS")
        return super().fit(X, y)


class Hang(Prior):
    """Never returns: ignores SIGTERM, keeps a thread spinning, and waits inside C code."""

    def __init__(self, seconds: int = 3600) -> None:
        self.seconds = seconds

    def fit(self, X: np.ndarray, y: np.ndarray) -> Hang:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("hang: started", flush=True)

        def spin() -> None:
            while True:
                time.sleep(0)

        threading.Thread(target=spin, daemon=True).start()
        libc = _libc()
        if libc is not None:
            libc.sleep(int(self.seconds))
        else:  # pragma: no cover
            time.sleep(self.seconds)
        return super().fit(X, y)


class EatMemory(Prior):
    """Allocates and touches ``megabytes``, ``step_mb`` at a time, then holds them for ``hold_s`` seconds.

    The pause between steps keeps the growth slow enough (about 1.5 GB/s at most) for a watchdog to see.
    """

    def __init__(self, megabytes: int = 4000, step_mb: int = 16, pause_s: float = 0.01, hold_s: float = 60.0) -> None:
        self.megabytes = megabytes
        self.step_mb = step_mb
        self.pause_s = pause_s
        self.hold_s = hold_s

    def fit(self, X: np.ndarray, y: np.ndarray) -> EatMemory:
        print(f"eat-memory: allocating {self.megabytes} MB", flush=True)
        held = []
        for _ in range(max(1, self.megabytes // self.step_mb)):
            held.append(np.ones(self.step_mb * 2**20 // 8))
            time.sleep(self.pause_s)
        time.sleep(self.hold_s)
        return super().fit(X, y)


class OutOfMemory(Prior):
    """Raises MemoryError, as an allocation that cannot be met does."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> OutOfMemory:
        raise MemoryError("deliberate")


def _segfault() -> None:
    print("segfault: about to crash", flush=True)
    ctypes.string_at(0)


class Segfault(Prior):
    """Dies with SIGSEGV."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Segfault:
        _segfault()
        return super().fit(X, y)  # pragma: no cover


class CrashOnce(Prior):
    """Dies with SIGSEGV when ``marker`` does not exist yet (creating it first), fits normally after."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker

    def fit(self, X: np.ndarray, y: np.ndarray) -> CrashOnce:
        if not os.path.exists(self.marker):
            with open(self.marker, "w") as f:
                f.write("crashed once\n")
            _segfault()
        return super().fit(X, y)


class Raise(Prior):
    """Raises ValueError('deliberate')."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Raise:
        raise ValueError("deliberate")


class Chatty(Prior):
    """Writes to stdout and stderr in every way a trial can: Python, file descriptors, C stdio, a subprocess.

    Args:
        lines: extra filler lines to print to stdout, before the markers.
    """

    def __init__(self, lines: int = 0) -> None:
        self.lines = lines

    def fit(self, X: np.ndarray, y: np.ndarray) -> Chatty:
        for i in range(self.lines):
            print(f"chatty: filler line {i:08d} ......................")
        print("chatty: python stdout")
        print("chatty: python stderr", file=sys.stderr)
        os.write(1, b"chatty: fd 1\n")
        os.write(2, b"chatty: fd 2\n")
        libc = _libc()
        if libc is not None:
            libc.printf(b"chatty: C printf\n")  # buffered by C stdio: the worker must flush it
        echo = shutil.which("echo")
        if echo is not None:
            subprocess.run([echo, "chatty: subprocess"], check=True)
        return super().fit(X, y)
