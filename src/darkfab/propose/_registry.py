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
    "llm": ("darkfab.propose._llm", "LLMProposer", {}),
    "portfolio": ("darkfab.propose._portfolio", "PortfolioProposer", {}),
    "llm_code": ("darkfab.propose._llm_code", "LLMCodeProposer", {}),
}

LLM_AWARE: frozenset[str] = frozenset({"llm", "portfolio", "llm_code"})
"""Proposers that talk to an LLM: :func:`make_proposer` hands them ``on_llm_call`` and ``llm_spent``."""


def proposer_names() -> list[str]:
    """The names :func:`make_proposer` accepts, in table order."""
    return list(PROPOSERS)


def make_proposer(
    name: str,
    context: SearchContext,
    *,
    on_llm_call: Callable[[Any], None] | None = None,
    llm_spent: tuple[int, float] = (0, 0.0),
) -> Proposer:
    """The proposer registered as ``name``, made for ``context``.

    Args:
        name: a name of :data:`PROPOSERS`.
        context: the search.
        on_llm_call: for proposers that ask an LLM (``llm``, ``portfolio``): called with each request as an
            :class:`~darkfab.propose.LLMCall`, for the factory to store. Ignored by the others.
        llm_spent: (tokens, money) the campaign's LLM already spent (a resumed campaign). Ignored by the others.
    """
    entry = PROPOSERS.get(name)
    if entry is None:
        raise SpecError(f"search.proposer must be one of {proposer_names()}, got {name!r}")
    module, attr, kwargs = entry
    cls: Callable[..., Proposer] = getattr(importlib.import_module(module), attr)
    if name in LLM_AWARE:
        kwargs = {**kwargs, "on_llm_call": on_llm_call, "llm_spent": llm_spent}
    return cls(context, **kwargs)
