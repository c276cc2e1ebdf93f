"""The contract every :class:`~darkfab.propose.Proposer` passes.

Use it by subclassing in a test module and providing the fixtures::

    class TestMyProposer(ProposerContract):
        @pytest.fixture
        def proposer_factory(self) -> ProposerFactory:
            return lambda context: MyProposer(context)

        @pytest.fixture
        def proposer_learns(self) -> bool:  # optional; False for proposers that do not model the history
            return True

The factory is called with a :class:`~darkfab.propose.SearchContext` the contract builds; a proposer must
honour its spaces, seed and directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from darkfab.propose import Proposal, Proposer, SearchContext, TrialState, TrialView
from darkfab.spec import ParamSpec, TrainerSpec

ProposerFactory = Callable[[SearchContext], Proposer]

ALL_STATES: tuple[TrialState, ...] = ("queued", "running", "completed", "failed", "pruned", "cancelled")
FIXED_CLASS_WEIGHT = {"a": 1, "b": 2}  # a fixed value that is not a plain scalar, passed through as is


def conditional_context(seed: int = 0, *, startup_trials: int = 5, pruner: str = "none") -> SearchContext:
    """Three trainers, each with its own space of int, float (log, step), categorical and fixed entries."""
    return SearchContext(
        trainers=[TrainerSpec(name=n) for n in ("tree", "linear", "knn")],
        spaces={
            "tree": {
                "max_depth": ParamSpec(low=2, high=12),
                "criterion": ParamSpec(choices=["gini", "entropy"]),
                "n_jobs": 1,
                "class_weight": FIXED_CLASS_WEIGHT,
            },
            "linear": {
                "C": ParamSpec(low=1e-3, high=1e3, log=True),
                "l1_ratio": ParamSpec(low=0.0, high=1.0, step=0.1),
                "fit_intercept": True,
            },
            "knn": {
                "n_neighbors": ParamSpec(low=1, high=49, step=2),
                "hidden": ParamSpec(choices=[[32], [64, 64]]),
                "p": ParamSpec(low=1.0, high=2.0),
            },
        },
        directions=("maximize",),
        objective_names=("accuracy",),
        seed=seed,
        startup_trials=startup_trials,
        pruner=pruner,
    )


def conditional_score(trainer: str, params: dict[str, Any]) -> float:
    """A deterministic stand-in for validation accuracy over :func:`conditional_context`'s space."""
    if trainer == "linear":
        return 0.9 - 0.02 * abs(math.log10(params["C"]) - 1.0) - 0.01 * params["l1_ratio"]
    if trainer == "tree":
        return 0.85 - 0.01 * abs(params["max_depth"] - 7) + (0.005 if params["criterion"] == "entropy" else 0.0)
    return 0.8 - 0.002 * abs(params["n_neighbors"] - 21) - 0.01 * (params["p"] - 1.0)


def quadratic_context(seed: int = 0, *, startup_trials: int = 10) -> SearchContext:
    """One trainer, two float parameters and a fixed one; minimise :func:`quadratic`."""
    return SearchContext(
        trainers=[TrainerSpec(name="toy")],
        spaces={"toy": {"x": ParamSpec(low=-5.0, high=5.0), "y": ParamSpec(low=-5.0, high=5.0), "tag": "fixed"}},
        directions=("minimize",),
        objective_names=("rmse",),
        seed=seed,
        startup_trials=startup_trials,
    )


def quadratic(params: dict[str, Any]) -> float:
    return (params["x"] - 1.3) ** 2 + (params["y"] + 0.7) ** 2


def check_inside(context: SearchContext, proposal: Proposal) -> None:
    """Fail unless ``proposal`` names a trainer of ``context`` and every parameter lies in its space."""
    assert proposal.trainer in [t.name for t in context.trainers]
    space = context.spaces[proposal.trainer]
    assert set(proposal.params) == set(space), (proposal.params, space)
    for name, entry in space.items():
        value = proposal.params[name]
        if not isinstance(entry, ParamSpec):
            assert value == entry
            continue
        if entry.type == "categorical":
            assert value in (entry.choices or []), (name, value)
            continue
        assert entry.low is not None and entry.high is not None
        assert entry.low <= value <= entry.high, (name, value)
        if entry.type == "int":
            assert isinstance(value, int) and not isinstance(value, bool), (name, value)
        if entry.step is not None:
            k = (value - entry.low) / entry.step
            assert abs(k - round(k)) < 1e-9, (name, value)


def view_of(proposal: Proposal, trial_id: int, state: TrialState, value: float | None = None) -> TrialView:
    """The :class:`TrialView` the factory would hand back for ``proposal``."""
    finished = state == "completed"
    return TrialView(
        trial_id=trial_id,
        proposer=proposal.proposer,
        trainer=proposal.trainer,
        params=proposal.params,
        state=state,
        value=value if finished else None,
        intermediate={1: 0.5, 2: 0.6} if state in ("pruned", "completed") else {},
        reward=value if finished else None,
        feasible=True if finished else None,
        error="boom" if state == "failed" else None,
    )


def run(proposer: Proposer, score: Callable[[Proposal], float], trials: int, start_id: int = 0) -> list[TrialView]:
    """Propose, score and observe ``trials`` proposals one at a time; the views, in order."""
    views = []
    for i in range(start_id, start_id + trials):
        (proposal,) = proposer.propose(1)
        view = view_of(proposal, i, "completed", score(proposal))
        proposer.observe(proposal, view)
        views.append(view)
    return views


def _accuracy(p: Proposal) -> float:
    return conditional_score(p.trainer, p.params)


class ProposerContract:
    """Tests every proposer passes. Subclass it and provide ``proposer_factory``."""

    @pytest.fixture
    def proposer_factory(self) -> ProposerFactory:
        raise NotImplementedError("provide a `proposer_factory` fixture returning Callable[[SearchContext], Proposer]")

    @pytest.fixture
    def proposer_learns(self) -> bool:
        """Whether the proposer should beat random search on a smooth toy objective."""
        return True

    def test_proposals_lie_inside_the_space(self, proposer_factory: ProposerFactory) -> None:
        context = conditional_context()
        proposer = proposer_factory(context)
        proposals: list[Proposal] = []
        for i in range(30):
            (p,) = proposer.propose(1)
            check_inside(context, p)
            assert p.reason, "every proposal says why"
            assert p.proposer == proposer.name
            proposer.observe(p, view_of(p, i, "completed", _accuracy(p)))
            proposals.append(p)
        assert len({p.trainer for p in proposals}) > 1, "a conditional search tries more than one trainer"

    def test_fixed_params_are_passed_through(self, proposer_factory: ProposerFactory) -> None:
        context = conditional_context()
        proposer = proposer_factory(context)
        for i, p in enumerate(proposer.propose(12)):
            for name, entry in context.spaces[p.trainer].items():
                if not isinstance(entry, ParamSpec):
                    assert p.params[name] == entry
            if p.trainer == "tree":
                assert p.params["class_weight"] == FIXED_CLASS_WEIGHT
            proposer.observe(p, view_of(p, i, "completed", _accuracy(p)))

    def test_propose_n_returns_n(self, proposer_factory: ProposerFactory) -> None:
        proposer = proposer_factory(conditional_context())
        assert proposer.propose(0) == []
        batch = proposer.propose(6)
        assert len(batch) == 6
        assert len({p.key for p in batch}) == 6, "keys tell the proposals apart"
        for i, p in enumerate(batch):
            proposer.observe(p, view_of(p, i, "completed", _accuracy(p)))
        assert len(proposer.propose(3)) == 3

    def test_observe_accepts_every_state(self, proposer_factory: ProposerFactory) -> None:
        context = conditional_context(pruner="median")
        proposer = proposer_factory(context)
        batch = proposer.propose(len(ALL_STATES))
        for i, (p, state) in enumerate(zip(batch, ALL_STATES, strict=True)):
            assert isinstance(proposer.should_prune(p, 1, 0.5), bool)
            proposer.observe(p, view_of(p, i, state, _accuracy(p)))
        for i, (p, state) in enumerate(zip(batch, ALL_STATES, strict=True)):  # again: a repeated report is harmless
            proposer.observe(p, view_of(p, i, state, _accuracy(p)))
        for p in proposer.propose(3):
            check_inside(context, p)

    def test_replay_accepts_every_state_and_unfit_trials(self, proposer_factory: ProposerFactory) -> None:
        context = conditional_context()
        source = proposer_factory(conditional_context(seed=7))
        batch = source.propose(len(ALL_STATES))
        history = [view_of(p, i, s, _accuracy(p)) for i, (p, s) in enumerate(zip(batch, ALL_STATES, strict=True))]
        n = len(history)
        history += [
            TrialView(n, "llm", "tree", {"max_depth": 99, "criterion": "gini", "n_jobs": 1}, "completed", 0.99),
            TrialView(n + 1, "llm", "svm", {"C": 1.0}, "completed", 0.97),
            TrialView(n + 2, "llm", "linear", {"fit_intercept": True}, "failed", None, error="missing params"),
            TrialView(n + 3, "llm", "linear", {"C": 1.0, "l1_ratio": 0.5, "fit_intercept": True}, "completed", 0.9),
        ]
        proposer = proposer_factory(context)
        proposer.replay(history)
        proposals = proposer.propose(4)
        assert len(proposals) == 4
        for i, p in enumerate(proposals):
            check_inside(context, p)
            proposer.observe(p, view_of(p, 100 + i, "completed", _accuracy(p)))

    def test_replay_then_propose_continues_the_search(self, proposer_factory: ProposerFactory) -> None:
        first = proposer_factory(conditional_context())
        history = run(first, _accuracy, 15)
        resumed = proposer_factory(conditional_context())
        resumed.replay(history)
        views = run(resumed, _accuracy, 5, start_id=15)
        seen = {(v.trainer, tuple(sorted(map(repr, v.params.items())))) for v in history}
        fresh = [v for v in views if (v.trainer, tuple(sorted(map(repr, v.params.items())))) not in seen]
        assert fresh, "a resumed search proposes parameter sets it has not tried"

    def test_a_proposal_from_before_a_restart_can_be_observed(self, proposer_factory: ProposerFactory) -> None:
        before = proposer_factory(conditional_context())
        orphans = before.propose(3)
        after = proposer_factory(conditional_context())
        after.replay([])
        live = after.propose(3)
        for i, p in enumerate(orphans):
            after.observe(p, view_of(p, i, "completed", _accuracy(p)))
        for i, p in enumerate(live):
            after.observe(p, view_of(p, 10 + i, "completed", _accuracy(p)))
        assert len(after.propose(2)) == 2

    def test_same_seed_same_proposals(self, proposer_factory: ProposerFactory) -> None:
        a = run(proposer_factory(conditional_context(seed=3)), _accuracy, 14)
        b = run(proposer_factory(conditional_context(seed=3)), _accuracy, 14)
        assert [(v.trainer, v.params) for v in a] == [(v.trainer, v.params) for v in b]

    def test_should_prune_answers_with_a_bool(self, proposer_factory: ProposerFactory) -> None:
        proposer = proposer_factory(conditional_context(pruner="median"))
        for i in range(8):
            (p,) = proposer.propose(1)
            pruned = False
            for step in range(1, 30):
                answer = proposer.should_prune(p, step, 0.5 + 0.01 * step if i < 6 else 0.1)
                assert isinstance(answer, bool)
                if answer:
                    pruned = True
                    break
            state: TrialState = "pruned" if pruned else "completed"
            proposer.observe(p, view_of(p, i, state, _accuracy(p)))

    def test_it_learns(self, proposer_factory: ProposerFactory, proposer_learns: bool) -> None:
        """60 trials get 10x closer than the median best of 60 uniform random draws, over three seeds."""
        if not proposer_learns:
            pytest.skip("this proposer does not model the history")
        trials = 60
        rng = np.random.default_rng(12345)
        draws = rng.uniform(-5.0, 5.0, size=(2001, trials, 2))
        random_best = ((draws[..., 0] - 1.3) ** 2 + (draws[..., 1] + 0.7) ** 2).min(axis=1)
        random_median = float(np.median(random_best))
        bests = []
        for seed in range(3):
            proposer = proposer_factory(quadratic_context(seed))
            views = run(proposer, lambda p: quadratic(p.params), trials)
            bests.append(min(v.value for v in views if v.value is not None))
        # the geometric mean, so that one lucky seed cannot carry the other two
        score = float(np.exp(np.mean(np.log(np.maximum(bests, 1e-12)))))
        assert score < 0.1 * random_median, (bests, random_median)
