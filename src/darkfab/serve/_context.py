"""The small context every part of the model service is handed (instead of the service itself)."""

from __future__ import annotations

import logging
import threading
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
        moved the aliases, in a thread of its own: a slow or broken registry never holds up a request."""
        hook = self.on_aliases_moved
        if hook is None:
            return

        def call() -> None:
            try:
                hook(why)
            except Exception:  # noqa: BLE001 - the mirror records its own failures; the server must go on
                log.exception("the alias hook of %r failed after: %s", self.factory, why)

        threading.Thread(target=call, name=f"darkfab-alias-hook-{self.factory}", daemon=True).start()


log = logging.getLogger("darkfab.serve")
