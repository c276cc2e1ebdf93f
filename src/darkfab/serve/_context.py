"""The small context every part of the model service is handed (instead of the service itself)."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import Registry
from ..spec import DeploySpec
from ..store import Store
from ._live import LiveBook
from ._metrics import ServeMetrics


@dataclass(frozen=True)
class ServeContext:
    """One served factory: its store and registry, deploy section, live figures and metrics."""

    store: Store
    registry: Registry
    factory: str
    factory_id: int
    deploy: DeploySpec
    book: LiveBook
    metrics: ServeMetrics
