"""The one LLM budget, held the same way by both LLM proposers (``llm`` and ``llm_code``), against a fake
OpenAI-compatible server on loopback: hard in tokens and in money, stopped as soon as it cannot pay for another
prompt, hard across runs (a resumed campaign sends nothing it cannot pay for), no paid-for proposal lost, and
the same stop reason."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from darkfab.events import StopReason
from darkfab.propose import CodePatch, LLMProposer, Proposer, SearchContext, TrialView
from darkfab.propose._llm_code import LLMCodeProposer
from darkfab.spec import LLMSpec, ParamSpec, TrainerSpec
from darkfab.testing.proposer_contract import conditional_context

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/propose is not a package: reach tests.helpers
from tests.helpers.fake_llm import CallLog, FakeLLM, ok, proposals_text  # noqa: E402
from tests.helpers.scripts import prior_script  # noqa: E402

USAGE = {"prompt_tokens": 300, "completion_tokens": 100}  # 400 tokens a request
PRICES = {"input_per_1k": 0.01, "output_per_1k": 0.02}  # 0.005 a request

Maker = Callable[..., Proposer]


def make_llm(server: FakeLLM, tmp_path: Path, calls: CallLog, spent: tuple[int, float], **fields: Any) -> Proposer:
    picks = itertools.count()

    def answer(body: dict[str, Any]) -> object:
        i = next(picks)
        pick = {"trainer": "tree", "params": {"max_depth": 2 + i % 10, "criterion": ["gini", "entropy"][i // 10 % 2]}}
        return ok(proposals_text([pick]), usage=USAGE)

    server.responder = answer
    spec = LLMSpec.model_validate({"base_url": server.base_url, "model": "fake", "retries": 0, **fields})
    return LLMProposer(conditional_context(), llm=spec, on_llm_call=calls.record, llm_spent=spent)


def make_llm_code(server: FakeLLM, tmp_path: Path, calls: CallLog, spent: tuple[int, float], **fields: Any) -> Proposer:
    script = tmp_path / "train.py"
    script.write_text(prior_script(shift="1.0", smoothing='SHIFT * params["scale"]'))
    scales = itertools.count()

    def answer(body: dict[str, Any]) -> object:
        scale = 0.5 + 0.01 * next(scales)
        return ok(json.dumps({"edits": [], "params": {"scale": scale}, "reason": "another scale"}), usage=USAGE)

    server.responder = answer
    context = SearchContext(
        trainers=[TrainerSpec(name="prior", script=str(script))],
        spaces={"prior": {"scale": ParamSpec(low=0.5, high=2.0)}},
        directions=("maximize",),
        objective_names=("accuracy",),
        llm=LLMSpec.model_validate({"base_url": server.base_url, "model": "fake", "retries": 0, **fields}),
    )
    proposer = LLMCodeProposer(context, on_llm_call=calls.record, llm_spent=spent)
    proposer.replay([TrialView(1, "llm_code", "prior", {"scale": 1.0}, "completed", 0.5, patch=CodePatch())])
    return proposer


@pytest.fixture(params=[make_llm, make_llm_code], ids=["llm", "llm_code"])
def make(request: pytest.FixtureRequest) -> Maker:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def spend_it_all(proposer: Proposer, rounds: int = 10) -> list[str]:
    """Propose one at a time until the budget stops the proposer; the keys handed out."""
    keys: list[str] = []
    for _ in range(rounds):
        keys += [p.key for p in proposer.propose(1)]
        if proposer.exhausted:
            break
    return keys


def check_stopped_for_good(proposer: Proposer, server: FakeLLM, calls: CallLog, keys: list[str]) -> None:
    assert proposer.stop_reason is StopReason.LLM_BUDGET
    assert proposer.budget is not None and proposer.budget.stop_reason is StopReason.LLM_BUDGET  # type: ignore[attr-defined]
    answered = [c for c in calls if c.status == "ok"]
    assert answered and all(set(c.proposal_keys) <= set(keys) for c in answered), "a paid-for proposal was lost"
    sent = server.count
    assert proposer.propose(3) == [] and server.count == sent  # stopped for good


def test_the_token_budget_is_hard_and_stops_before_a_prompt_it_cannot_pay(make: Maker, server: FakeLLM, tmp_path):
    calls = CallLog()
    proposer = make(server, tmp_path, calls, (0, 0.0), max_tokens=200, max_tokens_total=1000)
    keys = spend_it_all(proposer)
    assert proposer.exhausted.startswith("LLM token budget reached"), proposer.exhausted
    assert proposer.tokens_used <= 1000  # type: ignore[attr-defined]
    assert sum(c.prompt_tokens + c.completion_tokens for c in calls) <= 1000
    # two requests (800 tokens) leave too little for a third prompt: it is never sent, nor capped to nothing
    assert server.count == 2
    assert all(r["body"]["max_tokens"] <= 200 for r in server.requests)
    check_stopped_for_good(proposer, server, calls, keys)


def test_the_money_budget_is_hard(make: Maker, server: FakeLLM, tmp_path: Path) -> None:
    calls = CallLog()
    proposer = make(server, tmp_path, calls, (0, 0.0), max_tokens=200, max_cost=0.012, prices=PRICES)
    keys = spend_it_all(proposer)
    assert proposer.exhausted.startswith("LLM money budget reached"), proposer.exhausted
    assert proposer.cost_used == pytest.approx(0.005 * server.count) and proposer.cost_used <= 0.012  # type: ignore[attr-defined]
    check_stopped_for_good(proposer, server, calls, keys)


@pytest.mark.parametrize("budget", [{"max_tokens_total": 1000}, {"max_cost": 0.012, "prices": PRICES}])
def test_a_resumed_campaign_counts_what_it_spent(make: Maker, server: FakeLLM, tmp_path, budget) -> None:
    first = make(server, tmp_path, CallLog(), (0, 0.0), max_tokens=200, **budget)
    spend_it_all(first)
    spent = (first.tokens_used, first.cost_used)  # type: ignore[attr-defined]
    sent = server.count
    resumed = make(server, tmp_path, CallLog(), spent, max_tokens=200, **budget)
    assert resumed.propose(2) == [] and server.count == sent
    assert resumed.exhausted.startswith(first.exhausted.split(":")[0]) and resumed.stop_reason is StopReason.LLM_BUDGET


def test_a_proposer_that_may_still_ask_gives_no_stop_reason(make: Maker, server: FakeLLM, tmp_path: Path) -> None:
    proposer = make(server, tmp_path, CallLog(), (0, 0.0), max_tokens=200, max_tokens_total=100_000)
    assert len(proposer.propose(1)) == 1
    assert proposer.exhausted == "" and proposer.stop_reason is None
