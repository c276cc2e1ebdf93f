"""Proposers by name. Each entry is imported only when asked for, so an unused backend costs nothing."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ..errors import SpecError
from ._base import Proposer, SearchContext

PROPOSERS: dict[str, tuple[str, str, dict[str, Any]]] = {
    # name: (module, class, keyword arguments); the class is called as cls(context, **kwargs)
    "tpe": ("darkfab.propose._optuna", "OptunaProposer", {"sampler": "tpe"}),
    "random": ("darkfab.propose._optuna", "OptunaProposer", {"sampler": "random"}),
    "cmaes": ("darkfab.propose._optuna", "OptunaProposer", {"sampler": "cmaes"}),
    "qmc": ("darkfab.propose._optuna", "OptunaProposer", {"sampler": "qmc"}),
    "nsga2": ("darkfab.propose._optuna", "OptunaProposer", {"sampler": "nsga2"}),
}


def proposer_names() -> list[str]:
    """The names :func:`make_proposer` accepts, in table order."""
    return list(PROPOSERS)


def make_proposer(name: str, context: SearchContext) -> Proposer:
    """The proposer registered as ``name``, made for ``context``."""
    entry = PROPOSERS.get(name)
    if entry is None:
        raise SpecError(f"search.proposer must be one of {proposer_names()}, got {name!r}")
    module, attr, kwargs = entry
    cls: Callable[..., Proposer] = getattr(importlib.import_module(module), attr)
    return cls(context, **kwargs)
