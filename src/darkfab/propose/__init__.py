"""Proposers: turn the objective and the history into experiments.

``OptunaProposer`` is imported on first use (Optuna takes a while to import); ``make_proposer`` builds any
registered proposer by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Proposal, Proposer, SearchContext, TrialState, TrialView
from ._registry import PROPOSERS, make_proposer, proposer_names

if TYPE_CHECKING:
    from ._optuna import OptunaProposer

__all__ = [
    "PROPOSERS",
    "OptunaProposer",
    "Proposal",
    "Proposer",
    "SearchContext",
    "TrialState",
    "TrialView",
    "make_proposer",
    "proposer_names",
]


def __getattr__(name: str) -> Any:
    if name == "OptunaProposer":
        from ._optuna import OptunaProposer

        return OptunaProposer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
