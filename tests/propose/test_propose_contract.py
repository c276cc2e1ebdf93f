"""Every registered proposer passes the Proposer contract."""

from __future__ import annotations

import importlib.util

import pytest

from darkfab.propose import make_proposer, proposer_names
from darkfab.testing.proposer_contract import ProposerContract, ProposerFactory

LEARNERS = {"tpe", "cmaes"}  # random and qmc do not model the history; nsga2 needs more generations than 60 trials


def _available(name: str) -> bool:
    return name != "cmaes" or importlib.util.find_spec("cmaes") is not None


@pytest.fixture(
    params=[
        pytest.param(n, marks=pytest.mark.skipif(not _available(n), reason="the cmaes package is not installed"))
        for n in proposer_names()
        if n != "llm_code"  # edits training scripts, not a space: tests/propose/test_llm_code_proposer.py
    ]
)
def proposer_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class TestRegisteredProposers(ProposerContract):
    @pytest.fixture
    def proposer_factory(self, proposer_name: str) -> ProposerFactory:
        return lambda context: make_proposer(proposer_name, context)

    @pytest.fixture
    def proposer_learns(self, proposer_name: str) -> bool:
        return proposer_name in LEARNERS
