"""The small context every part of the model service is handed (instead of the service itself)."""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    on_aliases_moved: Callable[[str], None] | None = None

    def aliases_moved(self, why: str) -> None:
        """Tell the hook (the factory's ``registry.mlflow`` mirror, when the runtime set one) that this server
        moved the aliases; the hook must return at once (the runtime's runs the mirror in a thread)."""
        if self.on_aliases_moved is None:
            return
        try:
            self.on_aliases_moved(why)
        except Exception:  # noqa: BLE001 - the server goes on whatever the hook does
            log.exception("the alias hook of %r failed after: %s", self.factory, why)


log = logging.getLogger("darkfab.serve")
