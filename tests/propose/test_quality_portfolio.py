"""The built-in portfolio: strong default configurations are proposed first on a cold start, then the search."""

from __future__ import annotations

from darkfab.propose import SearchContext, TrialView, make_proposer
from darkfab.spec import TrainerSpec
from darkfab.train import portfolio_configs, resolved_space


def _context(trainers: list[TrainerSpec], task: str = "classification") -> SearchContext:
    return SearchContext(
        trainers=trainers,
        spaces={t.name: resolved_space(t, task) for t in trainers},  # type: ignore[arg-type]
        directions=("maximize",),
        objective_names=("accuracy",),
        startup_trials=4,
        warm_configs=portfolio_configs(trainers, task),  # type: ignore[arg-type]
    )


def test_cold_start_proposes_every_family_default_first_then_the_rest():
    trainers = [TrainerSpec(name=n) for n in ("lightgbm", "random_forest", "logistic_regression")]
    proposer = make_proposer("tpe", _context(trainers))
    first = proposer.propose(5)
    assert [p.trainer for p in first] == ["lightgbm", "random_forest", "logistic_regression", "lightgbm", "lightgbm"]
    assert all(p.reason.startswith("built-in portfolio") for p in first)
    assert first[0].params["num_leaves"] == 31 and first[0].params["learning_rate"] == 0.1
    assert first[2].params == {"C": 1.0}
    after = proposer.propose(3)
    assert not any(p.reason.startswith("built-in portfolio") for p in after)


def test_a_config_outside_the_factory_space_is_left_out_and_a_warm_factory_skips_the_portfolio():
    narrow = TrainerSpec.model_validate({"name": "lightgbm", "space": {"n_estimators": {"low": 10, "high": 20}}})
    proposer = make_proposer("tpe", _context([narrow]))
    assert not any(p.reason.startswith("built-in portfolio") for p in proposer.propose(3))
    trainers = [TrainerSpec(name="logistic_regression")]
    warm = make_proposer("tpe", _context(trainers))
    warm.replay(
        [
            TrialView(
                trial_id=1,
                proposer="tpe",
                trainer="logistic_regression",
                params={"C": 3.0},
                state="completed",
                value=0.9,
                values=None,
                intermediate={},
                reward=0.9,
                feasible=True,
                error=None,
                metrics={},
                seconds=1.0,
            )
        ]
    )
    assert not any(p.reason.startswith("built-in portfolio") for p in warm.propose(2))
