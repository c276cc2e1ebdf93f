"""Estimators for executor tests on a cluster: slow ones, and ones that tell where and with what they ran.

Select them by import path, as the faulty ones::

    TrainerSpec(name="sleep", estimator="tests.helpers.slow:Sleep")
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from darkfab.testing.faulty import Prior


def _ray_context() -> Any:
    try:
        import ray
    except ImportError:  # pragma: no cover - only run by the Ray executor
        return None
    return ray.get_runtime_context() if ray.is_initialized() else None


class Sleep(Prior):
    """Sleeps ``seconds``, then fits the priors; records where it ran.

    Args:
        seconds: how long to sleep.
        marker_dir: when set, each start of a fit leaves an empty file ``<trial>-<pid>.started`` there, and
            each end a ``<trial>-<pid>.done``: a test counts the attempts of a trial across processes and nodes.
        trial: names the trial in the marker files.
    """

    def __init__(self, seconds: float = 2.0, marker_dir: str = "", trial: str = "") -> None:
        self.seconds = seconds
        self.marker_dir = marker_dir
        self.trial = trial

    def _mark(self, what: str) -> None:
        if self.marker_dir:
            with open(os.path.join(self.marker_dir, f"{self.trial}-{os.getpid()}.{what}"), "w"):
                pass

    def fit(self, X: np.ndarray, y: np.ndarray) -> Sleep:
        print(f"sleep: {self.trial} started in {os.getpid()}", flush=True)
        self._mark("started")
        time.sleep(self.seconds)
        context = _ray_context()
        self.pid_ = os.getpid()
        self.node_id_ = context.get_node_id() if context is not None else ""
        self._mark("done")
        return super().fit(X, y)


class Resources(Prior):
    """Records the Ray resources assigned to the process that fits it (an empty dict outside Ray)."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> Resources:
        context = _ray_context()
        self.resources_ = dict(context.get_assigned_resources()) if context is not None else {}
        return super().fit(X, y)
