"""OptunaProposer: the conditional space, replay, observe after a restart, pruning, repeats, registry."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState as OptunaState

from darkfab.errors import SpecError
from darkfab.propose import CodePatch, OptunaProposer, Proposal, SearchContext, TrialView, make_proposer, proposer_names
from darkfab.spec import ParamSpec, TrainerSpec
from darkfab.testing.proposer_contract import conditional_context, conditional_score, run, view_of


def _ctx(spaces: dict, *, directions: tuple = ("maximize",), pruner: str = "none", startup: int = 3) -> SearchContext:
    return SearchContext(
        trainers=[TrainerSpec(name=n) for n in spaces],
        spaces=spaces,
        directions=directions,
        objective_names=tuple(f"m{i}" for i in range(len(directions))),
        seed=0,
        startup_trials=startup,
        pruner=pruner,
    )


def _study(proposer: OptunaProposer) -> optuna.Study:
    return proposer.study


def test_optuna_names_are_prefixed_by_trainer_and_returned_plain() -> None:
    proposer = OptunaProposer(conditional_context(), "random")
    for p in proposer.propose(10):
        trial = _study(proposer).trials[int(p.key)]
        assert trial.params["trainer"] == p.trainer
        searched = {k for k, v in conditional_context().spaces[p.trainer].items() if isinstance(v, ParamSpec)}
        assert set(trial.params) == {"trainer"} | {f"{p.trainer}.{k}" for k in searched}


def test_one_trainer_has_no_trainer_choice() -> None:
    proposer = OptunaProposer(_ctx({"only": {"a": ParamSpec(low=0.0, high=1.0)}}), "tpe")
    (p,) = proposer.propose(1)
    assert p.trainer == "only"
    assert set(_study(proposer).trials[0].params) == {"only.a"}


def test_non_scalar_choices_come_back_as_given() -> None:
    choices = [[32], [64, 64], {"kind": "x"}]
    proposer = OptunaProposer(_ctx({"mlp": {"hidden": ParamSpec(choices=choices)}}), "random")
    got = [p.params["hidden"] for p in proposer.propose(3)]
    assert sorted(map(repr, got)) == sorted(map(repr, choices))


def test_stepped_floats_are_rounded_to_the_step() -> None:
    proposer = OptunaProposer(_ctx({"m": {"r": ParamSpec(low=0.0, high=1.05, step=0.1)}}), "random")
    values = {p.params["r"] for p in proposer.propose(40)}
    assert values <= {round(0.1 * i, 1) for i in range(11)}


def test_reasons_say_what_the_sampler_did() -> None:
    proposer = OptunaProposer(conditional_context(startup_trials=2), "tpe")
    views = run(proposer, lambda p: conditional_score(p.trainer, p.params), 3)
    (p,) = proposer.propose(1)
    assert p.reason == f"tpe: sampled after 3 completed trials; best so far {max(v.value for v in views):.4g}"
    first = OptunaProposer(conditional_context(startup_trials=2), "tpe").propose(1)[0]
    assert first.reason == "random startup trial 1 of 2"
    assert OptunaProposer(conditional_context(), "random").propose(1)[0].reason.startswith("random: uniform draw")


def test_a_code_edit_trial_is_never_a_point_of_the_space() -> None:
    # its params fit the space, but it ran other code: the study must not learn that score for those params
    params = {"C": 1.0, "l1_ratio": 0.5, "fit_intercept": True}
    edit = CodePatch(({"block": "model", "search": "a", "replace": "b"},), "diff")
    proposer = OptunaProposer(conditional_context(startup_trials=2), "tpe")
    proposer.replay(
        [
            TrialView(1, "llm_code", "linear", params, "completed", 0.9, patch=edit),
            TrialView(2, "llm_code", "linear", {**params, "C": 2.0}, "completed", 0.8, patch=CodePatch()),
            TrialView(3, "tpe", "linear", {**params, "C": 3.0}, "completed", 0.7),
        ]
    )
    assert (proposer.replayed, proposer.skipped) == (1, 2)
    foreign = Proposal("llm_code", "linear", {**params, "C": 4.0}, "an edit", key="k", patch=edit)
    proposer.observe(foreign, TrialView(4, "llm_code", "linear", foreign.params, "completed", 0.6, patch=edit))
    assert (proposer.replayed, proposer.skipped) == (1, 3)
    assert [t.value for t in _study(proposer).trials] == [0.7]


def test_replay_rebuilds_states_values_and_intermediates() -> None:
    ctx = conditional_context(startup_trials=2)
    params = {"C": 1.0, "l1_ratio": 0.5, "fit_intercept": True}
    history = [
        TrialView(1, "tpe", "linear", params, "completed", 0.9, intermediate={1: 0.8}, feasible=True),
        TrialView(2, "tpe", "linear", {**params, "C": 2.0}, "pruned", None, intermediate={1: 0.4, 5: 0.45}),
        TrialView(3, "tpe", "linear", {**params, "C": 3.0}, "failed", None, error="boom"),
        TrialView(4, "tpe", "linear", {**params, "C": 4.0}, "cancelled", None),
        TrialView(5, "tpe", "linear", {**params, "C": 5.0}, "completed", 0.7, feasible=False),
        TrialView(6, "tpe", "linear", {**params, "C": 6.0}, "running", None),
        TrialView(7, "tpe", "linear", {**params, "C": 5e9}, "completed", 0.99),  # out of range
        TrialView(8, "tpe", "linear", {**params, "fit_intercept": False}, "completed", 0.99),  # fixed changed
        TrialView(9, "tpe", "linear", {**params, "tol": 1e-3}, "completed", 0.99),  # unknown param
        TrialView(10, "tpe", "svm", {"C": 1.0}, "completed", 0.99),  # trainer gone
        TrialView(11, "tpe", "tree", {"max_depth": 3, "criterion": "gini", "n_jobs": 1}, "completed", 0.8),
    ]
    proposer = OptunaProposer(ctx, "tpe")
    proposer.replay(history)
    assert (proposer.replayed, proposer.skipped, proposer.pending) == (6, 4, 1)
    trials = _study(proposer).trials
    assert [t.state for t in trials] == [
        OptunaState.COMPLETE,
        OptunaState.PRUNED,
        OptunaState.FAIL,
        OptunaState.FAIL,
        OptunaState.COMPLETE,
        OptunaState.COMPLETE,
    ]
    assert trials[0].value == 0.9 and trials[0].intermediate_values == {1: 0.8}
    assert trials[1].value == 0.45 and trials[1].intermediate_values == {1: 0.4, 5: 0.45}
    assert trials[0].constraints == {"darkfab_feasible": 0.0}
    assert trials[4].constraints == {"darkfab_feasible": 1.0}
    assert trials[0].params == {"trainer": "linear", "linear.C": 1.0, "linear.l1_ratio": 0.5}
    assert trials[5].params == {"trainer": "tree", "tree.max_depth": 3, "tree.criterion": "gini"}
    # the infeasible 0.7 does not count as the best; the completed 0.9 does
    assert proposer.propose(1)[0].reason.endswith("best so far 0.9")


def test_observe_after_a_restart_adds_a_finished_trial_once() -> None:
    before = OptunaProposer(conditional_context(), "random")
    orphan = before.propose(5)[-1]
    after = OptunaProposer(conditional_context(seed=1), "random")
    live = after.propose(5)  # its trial with the orphan's key holds other params
    assert any(p.key == orphan.key for p in live)
    after.observe(orphan, view_of(orphan, 0, "completed", 0.5))
    after.observe(orphan, view_of(orphan, 0, "completed", 0.5))  # a repeat is ignored
    trials = _study(after).trials
    assert len(trials) == 6 and trials[-1].state == OptunaState.COMPLETE and trials[-1].value == 0.5
    same_key = next(p for p in live if p.key == orphan.key)
    assert trials[int(same_key.key)].state == OptunaState.RUNNING, "the live trial is untouched"
    after.observe(same_key, view_of(same_key, 1, "completed", 0.6))
    assert trials[int(same_key.key)].state == OptunaState.RUNNING  # a snapshot; re-read:
    assert _study(after).trials[int(same_key.key)].value == 0.6


def test_a_failed_or_nan_result_fails_the_trial() -> None:
    proposer = OptunaProposer(conditional_context(), "tpe")
    a, b = proposer.propose(2)
    proposer.observe(a, view_of(a, 0, "completed", float("nan")))
    proposer.observe(b, view_of(b, 1, "failed"))
    assert [t.state for t in _study(proposer).trials] == [OptunaState.FAIL, OptunaState.FAIL]


def test_median_pruner_stops_a_trial_that_lags() -> None:
    proposer = OptunaProposer(_ctx({"gbm": {"lr": ParamSpec(low=0.01, high=0.3)}}, pruner="median"), "tpe")
    for i in range(6):
        (p,) = proposer.propose(1)
        for step in range(1, 40):
            assert proposer.should_prune(p, step, 0.8 + 0.001 * step) is False
        proposer.observe(p, TrialView(i, "tpe", p.trainer, p.params, "completed", 0.84))
    (bad,) = proposer.propose(1)
    steps = range(1, 20)
    first = next(step for step in steps if proposer.should_prune(bad, step, 0.5))
    assert first == 10  # warm-up: steps below 10 boosting rounds are never pruned
    proposer.observe(bad, TrialView(9, "tpe", bad.trainer, bad.params, "pruned", None))
    last = _study(proposer).trials[-1]
    assert last.state == OptunaState.PRUNED and last.value == 0.5


@pytest.mark.parametrize("pruner", ["none", "successive_halving", "hyperband"])
def test_other_pruners_answer(pruner: str) -> None:
    proposer = OptunaProposer(_ctx({"gbm": {"lr": ParamSpec(low=0.01, high=0.3)}}, pruner=pruner), "tpe")
    stopped = 0
    for i in range(20):
        (p,) = proposer.propose(1)
        state = "completed"
        for step in range(1, 28):
            if proposer.should_prune(p, step, p.params["lr"] + 0.001 * step):
                state = "pruned"
                stopped += 1
                break
        proposer.observe(
            p, TrialView(i, "tpe", p.trainer, p.params, state, p.params["lr"] if state == "completed" else None)
        )
    assert (stopped == 0) if pruner == "none" else (stopped > 0)


def test_multi_objective_nsga2_and_tpe() -> None:
    spaces = {"m": {"a": ParamSpec(low=0.0, high=1.0), "b": ParamSpec(low=0.0, high=1.0)}}
    for sampler in ("nsga2", "tpe", "random"):
        proposer = OptunaProposer(_ctx(spaces, directions=("maximize", "minimize"), pruner="median"), sampler)
        for i in range(12):
            (p,) = proposer.propose(1)
            assert proposer.should_prune(p, 1, 0.5) is False  # Optuna cannot prune multi-objective studies
            values = (p.params["a"], p.params["b"] ** 2)
            proposer.observe(p, TrialView(i, sampler, "m", p.params, "completed", values[0], values=values))
        assert len(_study(proposer).best_trials) >= 1
        a, b, c = proposer.propose(3)
        assert a.reason.endswith("12 completed trials; 2 objectives")
        proposer.observe(a, TrialView(20, sampler, "m", a.params, "pruned", None, intermediate={3: 0.1}))
        proposer.observe(b, TrialView(21, sampler, "m", b.params, "failed", None))
        proposer.observe(c, TrialView(22, sampler, "m", c.params, "completed", 0.5))  # one value of two
        states = [t.state for t in _study(proposer).trials[-3:]]
        assert states == [OptunaState.PRUNED, OptunaState.FAIL, OptunaState.FAIL]
        resumed = OptunaProposer(_ctx(spaces, directions=("maximize", "minimize")), sampler)
        resumed.replay([TrialView(1, sampler, "m", a.params, "completed", 0.4, values=(0.4, 0.2))])
        assert _study(resumed).trials[0].values == [0.4, 0.2]


def test_cmaes_refuses_several_objectives() -> None:
    spaces = {"m": {"a": ParamSpec(low=0.0, high=1.0)}}
    with pytest.raises(SpecError, match="'cmaes' optimises one objective, but 2 are declared"):
        OptunaProposer(_ctx(spaces, directions=("maximize", "minimize")), "cmaes")


def test_an_exhausted_discrete_space_repeats_and_says_so() -> None:
    proposer = OptunaProposer(_ctx({"m": {"k": ParamSpec(choices=["x", "y", "z"]), "fixed": 1}}), "random")
    first = proposer.propose(3)
    assert sorted(p.params["k"] for p in first) == ["x", "y", "z"]
    assert all("repeats" not in p.reason for p in first)
    (again,) = proposer.propose(1)
    assert again.reason.endswith("repeats an earlier parameter set: all 3 were proposed already")


def test_repeats_are_avoided_while_new_points_exist() -> None:
    proposer = OptunaProposer(_ctx({"m": {"k": ParamSpec(low=0, high=5)}}, startup=2), "tpe")
    seen = []
    for i in range(6):
        (p,) = proposer.propose(1)
        seen.append(p.params["k"])
        proposer.observe(p, TrialView(i, "tpe", "m", p.params, "completed", -abs(p.params["k"] - 2)))
    assert sorted(seen) == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "entry,match",
    [
        (ParamSpec(low=0.1, high=1.0, log=True, step=0.1), "both `log: true` and `step`"),
        (ParamSpec(type="int", low=0.5, high=3), "must be a whole number"),
    ],
)
def test_bad_ranges_are_spec_errors(entry: ParamSpec, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        OptunaProposer(_ctx({"m": {"p": entry}}), "tpe")


def test_registry() -> None:
    assert proposer_names()[:5] == ["tpe", "random", "cmaes", "qmc", "nsga2"]
    assert {"llm", "portfolio", "llm_code"} <= set(proposer_names())
    assert make_proposer("qmc", conditional_context()).name == "qmc"
    with pytest.raises(
        SpecError, match=r"must be one of \['tpe', 'random', 'cmaes', 'qmc', 'nsga2', .*\], got 'bayes'"
    ):
        make_proposer("bayes", conditional_context())
    with pytest.raises(SpecError, match="search.pruner must be one of"):
        make_proposer("tpe", SearchContext(**{**conditional_context().__dict__, "pruner": "asha"}))


def test_importing_propose_does_not_import_optuna() -> None:
    code = "import sys, darkfab.propose; assert 'optuna' not in sys.modules; darkfab.propose.OptunaProposer"
    subprocess.run([sys.executable, "-c", code], check=True)
