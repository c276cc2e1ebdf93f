"""PortfolioProposer: the bandit, routing, members learning from each other, and retiring a spent LLM."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from darkfab.propose import LLMCall, PortfolioProposer, Proposal, Proposer, TrialView
from darkfab.spec import LLMSpec
from darkfab.testing.proposer_contract import check_inside, conditional_context, conditional_score, view_of

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/propose is not a package: reach tests.helpers
from tests.helpers.fake_llm import CallLog, FakeLLM, ok, proposals_text  # noqa: E402

KEY_ENV = "DARKFAB_TEST_LLM_KEY"


class Stub(Proposer):
    """Proposes linear models with C drawn from a fixed list; records what it observes."""

    def __init__(self, name: str, cs: list[float]) -> None:
        self.name = name
        self.cs = list(cs)
        self.i = 0
        self.seen: list[tuple[str, int]] = []

    def replay(self, history: Any) -> None:
        pass

    def propose(self, n: int) -> list[Proposal]:
        out = []
        for _ in range(n):
            c = self.cs[self.i % len(self.cs)]
            self.i += 1
            out.append(
                Proposal(self.name, "linear", {"C": c, "l1_ratio": 0.0, "fit_intercept": True}, "stub", str(self.i))
            )
        return out

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        self.seen.append((proposal.key, result.trial_id))


def play(portfolio: PortfolioProposer, rounds: int, score: Any, seconds: Any = None) -> list[Proposal]:
    made = []
    for i in range(rounds):
        (p,) = portfolio.propose(1)
        member = p.key.partition(":")[0]
        value = score(member, i)
        view = TrialView(i, p.proposer, p.trainer, p.params, "completed", value, reward=value, feasible=True,
                         seconds=None if seconds is None else seconds(member))  # fmt: skip
        portfolio.observe(p, view)
        made.append(p)
    return made


def test_the_member_that_improves_the_reward_gets_more_trials() -> None:
    portfolio = PortfolioProposer(conditional_context(), members=["tpe", "random"])
    portfolio.arms["tpe"].proposer = Stub("tpe", [1.0])
    portfolio.arms["random"].proposer = Stub("random", [2.0])
    # "tpe" keeps finding something better; "random" never does
    made = play(portfolio, 40, lambda member, i: 0.5 + i / 100 if member == "tpe" else 0.1)
    members = [p.key.partition(":")[0] for p in made]
    assert members[:2] == ["tpe", "random"]  # each has a first turn
    assert members.count("tpe") > 2 * members.count("random"), members
    assert all(p.proposer == "portfolio" and p.reason.startswith("portfolio chose ") for p in made)
    assert "UCB1" in made[-1].reason and "scaled gain/cost" in made[-1].reason and "| stub" in made[-1].reason
    assert len(portfolio.decisions) == 40 and set(portfolio.decisions[-1]["scores"]) == {"tpe", "random"}


def test_cost_counts_a_member_that_earns_as_much_for_ten_times_the_seconds_gets_fewer() -> None:
    portfolio = PortfolioProposer(conditional_context(), members=["tpe", "random"])
    portfolio.arms["tpe"].proposer = Stub("tpe", [1.0])
    portfolio.arms["random"].proposer = Stub("random", [2.0])
    made = play(portfolio, 40, lambda member, i: 0.5 + i / 100, seconds=lambda m: 10.0 if m == "tpe" else 1.0)
    members = [p.key.partition(":")[0] for p in made]
    assert members.count("random") > members.count("tpe"), members


def test_a_batch_is_spread_and_results_go_to_their_maker_and_to_everyone() -> None:
    portfolio = PortfolioProposer(conditional_context(), members=["tpe", "random"])
    batch = portfolio.propose(6)
    assert len(batch) == 6 and {p.key.partition(":")[0] for p in batch} == {"tpe", "random"}
    for i, p in enumerate(batch):
        check_inside(portfolio.context, p)
        portfolio.observe(p, view_of(p, i, "completed", conditional_score(p.trainer, p.params)))
    for arm in portfolio.arms.values():  # both Optuna studies learned all six trials
        assert len(arm.proposer.study.trials) == 6  # type: ignore[attr-defined]
    assert portfolio.arms["tpe"].trials + portfolio.arms["random"].trials == 6
    # a proposal from before a restart is routed by its key
    fresh = PortfolioProposer(conditional_context(), members=["tpe", "random"])
    stub = Stub("random", [3.0])
    fresh.arms["random"].proposer = stub
    fresh.observe(batch[1], view_of(batch[1], 1, "completed", 0.5))
    key = batch[1].key.partition(":")[2]
    owner = batch[1].key.partition(":")[0]
    assert (stub.seen[0][0] == key) == (owner == "random")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv(KEY_ENV, "k")
    counter = iter(range(10_000))

    def answer(body: dict[str, Any]) -> Any:
        i = next(counter)
        proposal = {
            "trainer": "tree",
            "params": {"max_depth": 2 + i % 11, "criterion": ["gini", "entropy"][i // 11 % 2]},
        }
        return ok(proposals_text([{**proposal, "reason": f"tree number {i}"}]))

    with FakeLLM(answer) as server:
        yield server


def test_the_llm_is_retired_at_its_token_budget_and_the_others_go_on(fake: FakeLLM) -> None:
    calls: list[LLMCall] = CallLog()
    spec = LLMSpec(base_url=fake.base_url, model="fake", api_key_env=KEY_ENV, max_tokens_total=2500)
    context = conditional_context()
    context = type(context)(**{**context.__dict__, "llm": spec})
    portfolio = PortfolioProposer(context, members=["llm", "tpe", "random"], on_llm_call=calls.record)
    made = []
    for i in range(30):
        got = portfolio.propose(2)
        assert len(got) == 2, "the portfolio goes on when the LLM stops"
        for j, p in enumerate(got):
            check_inside(context, p)
            reward = 0.99 if p.key.startswith("llm:") else 0.5 + (i * 2 + j) / 1000  # the LLM is the best member
            portfolio.observe(p, view_of(p, i * 2 + j, "completed", reward))
            made.append(p)
    llm = portfolio.arms["llm"]
    assert llm.retired.startswith("LLM token budget reached") and llm.proposer.tokens_used <= 2500  # type: ignore[attr-defined]
    assert sum(c.prompt_tokens + c.completion_tokens for c in calls) <= 2500
    sent = len(fake.requests)
    portfolio.propose(4)
    assert len(fake.requests) == sent  # retired: never asked again
    from_llm = [p for p in made if p.key.startswith("llm:")]
    assert from_llm and all(c.status == "ok" for c in calls)
    # the stored call names the portfolio's keys
    assert {k for c in calls for k in c.proposal_keys} == {p.key for p in from_llm}
    assert any("llm retired (LLM token budget reached" in p.reason for p in made)
    assert any(d.get("retired") for d in portfolio.decisions)


def test_a_member_with_nothing_to_propose_sits_out() -> None:
    portfolio = PortfolioProposer(conditional_context(), members=["tpe", "random"])
    portfolio.arms["tpe"].proposer = Stub("tpe", [1.0])
    portfolio.arms["tpe"].proposer.propose = lambda n: []  # type: ignore[method-assign]
    got = portfolio.propose(3)
    assert len(got) == 3 and all(p.key.startswith("random:") for p in got)


def test_members_are_checked() -> None:
    from darkfab.errors import SpecError

    with pytest.raises(SpecError, match="among"):
        PortfolioProposer(conditional_context(), members=["tpe", "portfolio"])
    with pytest.raises(SpecError, match="twice"):
        PortfolioProposer(conditional_context(), members=["tpe", "tpe"])
