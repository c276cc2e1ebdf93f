"""A campaign's hard limits, what has been spent against them, and why it stopped."""

from __future__ import annotations

from dataclasses import dataclass

from ..events import StopReason


@dataclass(frozen=True)
class Stop:
    """Why a campaign stopped: a typed reason to decide on, and the sentence shown to a person."""

    reason: StopReason
    message: str


@dataclass
class Budget:
    """Hard limits of one campaign and what has been spent against them."""

    trials: int | None
    time_s: float | None
    cpu_s: float | None
    spent_time_s: float = 0.0
    spent_cpu_s: float = 0.0

    def exhausted_by(self, elapsed: float, cpu: float) -> Stop | None:
        if self.time_s is not None and elapsed >= self.time_s:
            return Stop(StopReason.TIME_BUDGET, f"wall-time budget of {self.time_s:g}s reached")
        if self.cpu_s is not None and cpu >= self.cpu_s:
            return Stop(StopReason.CPU_BUDGET, f"CPU budget of {self.cpu_s:g}s reached")
        return None
