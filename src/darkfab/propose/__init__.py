"""Proposers: turn the objective and the history into experiments."""

from __future__ import annotations

from ._base import Proposal, Proposer, SearchContext, TrialState, TrialView

__all__ = ["Proposal", "Proposer", "SearchContext", "TrialState", "TrialView"]
