"""Proposers: turn the objective and the history into experiments.

``OptunaProposer``, ``LLMProposer`` and ``PortfolioProposer`` are imported on first use (Optuna takes a while
to import); ``make_proposer`` builds any registered proposer by name. ``ChatClient`` talks to any
OpenAI-compatible chat-completions endpoint (see ``_llm_client``), and ``LLMExchange`` sends requests through
a token and money budget and records each one, for every part of darkfab that asks a model (the proposers,
the AI judge of :mod:`darkfab.teach_judge`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..patch import CodePatch
from ._base import Proposal, Proposer, SearchContext, TrialState, TrialView
from ._llm_client import Attempt, ChatClient, ChatResult
from ._registry import LLM_AWARE, PROPOSERS, make_proposer, proposer_names

if TYPE_CHECKING:
    from ._llm import LLMProposer
    from ._llm_exchange import LLMBudget, LLMCall, LLMExchange
    from ._optuna import OptunaProposer
    from ._portfolio import PortfolioProposer

_LAZY = {
    "LLMBudget": "._llm_exchange",
    "LLMCall": "._llm_exchange",
    "LLMExchange": "._llm_exchange",
    "LLMProposer": "._llm",
    "OptunaProposer": "._optuna",
    "PortfolioProposer": "._portfolio",
}

__all__ = [
    "LLM_AWARE",
    "PROPOSERS",
    "Attempt",
    "ChatClient",
    "ChatResult",
    "CodePatch",
    "LLMBudget",
    "LLMCall",
    "LLMExchange",
    "LLMProposer",
    "OptunaProposer",
    "PortfolioProposer",
    "Proposal",
    "Proposer",
    "SearchContext",
    "TrialState",
    "TrialView",
    "make_proposer",
    "proposer_names",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
