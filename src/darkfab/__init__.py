"""darkfab: a lights-out model factory.

``import darkfab`` stays light; the heavy parts load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .results import ChampionSummary, Progress, RunResult, TrialRow
    from .runtime import Factory, FactoryStatus
    from .spec import FactorySpec, load_spec

_LAZY = {
    "Factory": ".runtime",
    "FactoryStatus": ".runtime",
    "RunResult": ".results",
    "ChampionSummary": ".results",
    "Progress": ".results",
    "TrialRow": ".results",
    "FactorySpec": ".spec",
    "load_spec": ".spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'darkfab' has no attribute {name!r}")


__all__ = [
    "ChampionSummary",
    "Factory",
    "FactorySpec",
    "FactoryStatus",
    "Progress",
    "RunResult",
    "TrialRow",
    "__version__",
    "load_spec",
]
