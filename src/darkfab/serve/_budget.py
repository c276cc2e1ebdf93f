"""A per-minute budget for the events a client can cause (so a flood of bad requests cannot flood the log)."""

from __future__ import annotations

import threading
import time
from collections import deque


class EventBudget:
    """At most ``per_minute`` events of a kind a client can cause; the rest are counted, not written."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        self.skipped = 0

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] > 60.0:
                self._times.popleft()
            if len(self._times) >= self.per_minute:
                self.skipped += 1
                return False
            self._times.append(now)
            return True

    def skipped_since(self) -> int:
        with self._lock:
            n, self.skipped = self.skipped, 0
            return n
