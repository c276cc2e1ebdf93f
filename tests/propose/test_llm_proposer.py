"""LLMProposer against a real HTTP server on loopback that answers well, badly, late or not at all."""

from __future__ import annotations

import hashlib
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from darkfab.propose import ChatClient, LLMCall, LLMProposer, SearchContext, TrialView
from darkfab.propose._llm import _sample, parse_answer
from darkfab.propose._space import ConditionalSpace
from darkfab.spec import LLMSpec
from darkfab.testing.proposer_contract import ProposerContract, ProposerFactory, check_inside, conditional_context

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/propose is not a package: reach tests.helpers
from tests.helpers.fake_llm import (
    CallLog,
    FakeLLM,
    Reply,
    asked_for,
    drop,
    ok,
    proposals_text,
    raw,
    slow,
    status,
    trickle,
)

KEY_ENV = "DARKFAB_TEST_LLM_KEY"
GOOD = [
    {"trainer": "tree", "params": {"max_depth": 5, "criterion": "gini"}, "reason": "a shallow tree first"},
    {"trainer": "linear", "params": {"C": 1.0, "l1_ratio": 0.5}, "reason": "a middle of the road linear model"},
]


def random_responder(context: SearchContext) -> Any:
    """Valid, new-looking proposals for ``context``, the same for the same request."""
    space = ConditionalSpace(context)

    def answer(body: dict[str, Any]) -> Reply:
        rng = random.Random(hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest())
        out = []
        for _ in range(asked_for(body)):
            trainer = rng.choice(space.trainers)
            params = {n: _sample(d, rng) for n, d, _ in space.spaces[trainer].entries if d is not None}
            out.append({"trainer": trainer, "params": params, "reason": f"random pick {rng.random():.3f}"})
        return ok(proposals_text(out, notes="exploring"))

    return answer


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLLM]:
    monkeypatch.setenv(KEY_ENV, "test-key-123")
    with FakeLLM() as server:
        yield server


class Made:
    def __init__(self, fake: FakeLLM, context: SearchContext | None = None, **spec: Any) -> None:
        self.context = context or conditional_context()
        options = {"base_url": fake.base_url, "model": "fake-model", "api_key_env": KEY_ENV, "timeout": 2.0}
        self.spec = LLMSpec(**{**options, **spec})
        self.slept: list[float] = []
        self.calls: list[LLMCall] = CallLog()
        client = ChatClient(self.spec, sleep=self.slept.append, backoff_s=0.01, seed=0)
        self.proposer = LLMProposer(self.context, llm=self.spec, on_llm_call=self.calls.record, client=client)

    @property
    def statuses(self) -> list[str]:
        return [c.status for c in self.calls]


def test_a_good_answer_becomes_proposals_linked_to_their_call(fake: FakeLLM) -> None:
    fake.script(ok(proposals_text(GOOD, notes="trees look promising")))
    context = SearchContext(
        **{
            **conditional_context().__dict__,
            "description": "catch fraud; recall matters more than precision",
            "constraints": ("latency_p95_ms <= 20",),
        }
    )
    m = Made(fake, context)
    proposals = m.proposer.propose(2)
    assert [(p.trainer, p.params["max_depth"] if p.trainer == "tree" else p.params["C"]) for p in proposals] == [
        ("tree", 5),
        ("linear", 1.0),
    ]
    for p in proposals:
        check_inside(m.context, p)
        assert p.proposer == "llm" and p.reason in (GOOD[0]["reason"], GOOD[1]["reason"])
    assert isinstance(proposals[0].params["max_depth"], int)
    assert proposals[0].params["n_jobs"] == 1 and proposals[1].params["fit_intercept"] is True  # fixed filled in
    (call,) = m.calls
    assert call.status == "ok" and call.error == "" and call.model == "fake-model"
    assert call.prompt_tokens > 0 and call.completion_tokens > 0
    assert list(call.proposal_keys) == [p.key for p in proposals] == [f"llm-{call.call_id}-0", f"llm-{call.call_id}-1"]
    request = fake.requests[0]
    assert request["headers"]["Authorization"] == "Bearer test-key-123"
    assert request["body"]["model"] == "fake-model" and request["body"]["temperature"] == 0.7
    prompt = request["body"]["messages"][1]["content"]
    for needle in ("catch fraud", "latency_p95_ms <= 20", "maximize accuracy", "max_depth: int in [2, 12]",
                   "one of [\"gini\", \"entropy\"]", "log scale", "Propose exactly 2"):  # fmt: skip
        assert needle in prompt, needle
    assert "model: trees look promising" in m.proposer.notebook


def test_the_prompt_shows_best_recent_failures_and_the_notebook(fake: FakeLLM) -> None:
    m = Made(fake, history=4)
    history = [
        TrialView(
            i,
            "tpe",
            "tree",
            {"max_depth": 2 + i, "criterion": "gini", "n_jobs": 1},
            "completed",
            0.5 + i / 100,
            reward=0.5 + i / 100,
            metrics={"accuracy": 0.5 + i / 100, "f1": 0.4},
        )  # fmt: skip
        for i in range(8)
    ]
    history.append(
        TrialView(
            9, "tpe", "linear", {"C": 1.0, "l1_ratio": 0.1}, "failed", None, error="Traceback...\nValueError: bad"
        )
    )
    m.proposer.replay(history)
    deep = {"trainer": "tree", "params": {"max_depth": 12, "criterion": "entropy"}, "reason": "deeper"}
    fake.script(ok(proposals_text([deep])))
    (p,) = m.proposer.propose(1)
    m.proposer.observe(p, TrialView(10, "llm", p.trainer, p.params, "completed", 0.99, reward=0.99))
    fake.script(ok(proposals_text([GOOD[1]])))
    m.proposer.propose(1)
    prompt = fake.requests[-1]["body"]["messages"][1]["content"]
    best = prompt.split("## Best trials")[1].split("##")[0]
    assert '"trial": 10' in best and '"trial": 7' in best and '"trial": 0' not in best
    assert '"f1": 0.4' in prompt  # metrics are shown
    assert "ValueError: bad" in prompt.split("## Recent failures")[1]
    notebook = prompt.split("## Notebook")[1]
    assert "trial 10" in notebook and "new best" in notebook


@pytest.mark.parametrize(
    "bad",
    [
        "Sure! I would try a random forest with 200 trees.",  # garbage
        '{"proposals": [{"trainer": "tree", "params": {"max_depth": 5,',  # malformed JSON
        '{"ideas": ["deeper trees"]}',  # JSON, wrong shape
        "",  # nothing
    ],
)
def test_an_unreadable_answer_is_sent_back_with_the_error(fake: FakeLLM, bad: str) -> None:
    fake.script(ok(bad), ok(proposals_text(GOOD)))
    m = Made(fake)
    proposals = m.proposer.propose(2)
    assert len(proposals) == 2
    assert m.statuses == ["invalid", "ok"]
    assert m.calls[0].error and m.calls[0].proposal_keys == ()
    repair = fake.requests[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert m.calls[0].error.split(";")[0] in repair[-1]["content"]


def test_proposals_outside_the_space_are_sent_back_then_dropped(fake: FakeLLM) -> None:
    wrong = [
        {"trainer": "svm", "params": {"C": 1.0}, "reason": "unknown trainer"},
        {"trainer": "tree", "params": {"max_depth": 99, "criterion": "gini"}, "reason": "out of range"},
        {"trainer": "tree", "params": {"max_depth": 3.5, "criterion": "gini"}, "reason": "not an int"},
        {"trainer": "tree", "params": {"max_depth": 4, "criterion": "mse"}, "reason": "not a choice"},
        {"trainer": "tree", "params": {"max_depth": 4, "criterion": "gini", "n_jobs": 8}, "reason": "fixed changed"},
        {"trainer": "linear", "params": {"C": 1.0}, "reason": "missing l1_ratio"},
        {"trainer": "linear", "params": {"C": 1.0, "l1_ratio": 0.55}, "reason": "off the step"},
        {"trainer": "linear", "params": {"C": 1.0, "l1_ratio": 0.5, "gamma": 2}, "reason": "unknown parameter"},
        ["not", "an", "object"],
    ]
    fake.script(ok(proposals_text(wrong)), ok(proposals_text(wrong[:2])))
    m = Made(fake, max_repairs=1)
    proposals = m.proposer.propose(2)
    assert m.statuses == ["invalid", "invalid"] and len(fake.requests) == 2  # one repair, then dropped
    errors = m.calls[0].error
    for needle in ("unknown trainer 'svm'", "max_depth=99 is not int in [2, 12]", "max_depth=3.5", "criterion=\"mse\"",
                   "n_jobs is fixed at 1", "l1_ratio is missing", "l1_ratio=0.55", "unknown parameter(s) ['gamma']",
                   "must be an object"):  # fmt: skip
        assert needle in errors, needle
    assert "unknown trainer 'svm'" in fake.requests[1]["body"]["messages"][-1]["content"]
    # nothing usable came back: random valid proposals keep the factory going, and say why
    assert len(proposals) == 2
    for p in proposals:
        check_inside(m.context, p)
        assert p.reason.startswith("llm unavailable:") and "unknown trainer" in p.reason


def test_a_repair_keeps_the_good_half_and_asks_only_for_the_rest(fake: FakeLLM) -> None:
    half = [GOOD[0], {"trainer": "tree", "params": {"max_depth": 0, "criterion": "gini"}, "reason": "too shallow"}]
    fake.script(ok(proposals_text(half)), ok(proposals_text([GOOD[1]])))
    m = Made(fake)
    proposals = m.proposer.propose(2)
    assert [p.trainer for p in proposals] == ["tree", "linear"]
    assert m.statuses == ["invalid", "ok"]
    assert len(m.calls[0].proposal_keys) == 1 and len(m.calls[1].proposal_keys) == 1
    assert "Propose exactly 1 new configuration " in fake.requests[1]["body"]["messages"][-1]["content"]


def test_duplicates_of_earlier_trials_and_of_each_other_are_sent_back(fake: FakeLLM) -> None:
    m = Made(fake, max_repairs=1)
    done = {"max_depth": 5, "criterion": "gini", "n_jobs": 1}
    m.proposer.replay([TrialView(1, "tpe", "tree", done, "completed", 0.8)])
    twice = {"trainer": "linear", "params": {"C": 2.0, "l1_ratio": 0.2}, "reason": "twice"}
    fake.script(ok(proposals_text([GOOD[0], twice, twice])), ok(proposals_text([GOOD[1]])))
    proposals = m.proposer.propose(3)
    assert "duplicate" in m.calls[0].error and "trial 1" in m.calls[0].error
    assert "an earlier proposal of this answer" in m.calls[0].error
    assert [p.params.get("C") for p in proposals] == [2.0, 1.0]
    # and a later answer may not repeat what this one proposed
    fake.script(ok(proposals_text([twice])), ok(proposals_text([twice])))
    again = m.proposer.propose(1)
    assert m.statuses[-2:] == ["invalid", "invalid"] and "duplicate" in m.calls[-1].error
    assert again[0].reason.startswith("llm unavailable") and again[0].params.get("C") != 2.0


def test_a_429_waits_as_retry_after_asks_then_succeeds(fake: FakeLLM) -> None:
    fake.script(status(429, retry_after=1), status(429, retry_after="0.25"), ok(proposals_text(GOOD)))
    m = Made(fake)
    assert len(m.proposer.propose(2)) == 2
    assert m.slept == [1.0, 0.25]
    assert m.statuses == ["429", "429", "ok"]
    assert "retried after 1.00s" in m.calls[0].error and m.calls[0].prompt_tokens == 0


def test_a_timeout_is_retried(fake: FakeLLM) -> None:
    fake.script(slow(3.0), ok(proposals_text(GOOD)))
    m = Made(fake, timeout=0.3, retries=2)
    assert len(m.proposer.propose(2)) == 2
    assert m.statuses == ["timeout", "ok"]
    assert "no answer within 0.3s" in m.calls[0].error


def test_a_dropped_connection_is_retried(fake: FakeLLM) -> None:
    fake.script(drop(), raw("<html>bad gateway</html>", code=502), ok(proposals_text(GOOD)))
    m = Made(fake, retries=3)
    assert len(m.proposer.propose(2)) == 2
    assert m.statuses == ["error", "error", "ok"]
    assert "disconnected" in m.calls[0].error.lower() and "HTTP 502" in m.calls[1].error


def test_when_every_attempt_fails_random_proposals_keep_the_factory_going(fake: FakeLLM) -> None:
    fake.script(drop(), drop(), status(429, retry_after=0), status(500), slow(3.0), slow(3.0))
    m = Made(fake, retries=1, timeout=0.3)
    for expected in ("disconnected", "HTTP 500", "no answer within"):
        proposals = m.proposer.propose(2)
        assert len(proposals) == 2
        for p in proposals:
            check_inside(m.context, p)
            assert p.reason.startswith("llm unavailable:") and expected.lower() in p.reason.lower()
    assert m.statuses == ["error", "error", "429", "error", "timeout", "timeout"]
    # three failed exchanges in a row: it rests (no request) before asking again
    sent = len(fake.requests)
    fake.script(ok(proposals_text(GOOD)))
    rest = m.proposer.propose(1)
    assert len(fake.requests) == sent and "resting after 3 failed exchanges" in rest[0].reason
    m.proposer.propose(1)
    assert len(m.proposer.propose(2)) == 2 and len(fake.requests) == sent + 1


def test_a_missing_key_is_named_without_a_request(fake: FakeLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    m = Made(fake)
    (p,) = m.proposer.propose(1)
    assert f"environment variable {KEY_ENV}" in p.reason and not fake.requests
    assert m.statuses == ["error"]


def test_a_failing_sink_loses_no_proposal(fake: FakeLLM) -> None:
    fake.script(ok(proposals_text(GOOD)))
    m = Made(fake)

    def broken(call: LLMCall) -> None:
        raise RuntimeError("database is locked")

    m.proposer._sink = broken
    assert len(m.proposer.propose(2)) == 2


def test_the_token_budget_is_hard(fake: FakeLLM) -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 100}
    fake.responder = lambda body: ok(proposals_text([]), usage=usage)
    m = Made(fake, max_tokens_total=1000)
    for _ in range(10):
        fake.script(Reply("ok", content=proposals_text([random_pick(len(fake.requests))]), usage=usage))
        m.proposer.propose(1)
        if m.proposer.exhausted:
            break
    assert m.proposer.exhausted.startswith("LLM token budget reached")
    assert m.proposer.tokens_used <= 1000 and len(fake.requests) == 2
    sent = len(fake.requests)
    assert m.proposer.propose(3) == [] and len(fake.requests) == sent  # stopped for good
    # the request's max_tokens was lowered to what the budget could still pay
    assert fake.requests[1]["body"]["max_tokens"] < 1000 - 400


def test_the_money_budget_is_hard_and_a_resumed_campaign_counts_what_it_spent(fake: FakeLLM) -> None:
    usage = {"prompt_tokens": 300, "completion_tokens": 100}
    fake.script(*(Reply("ok", content=proposals_text([random_pick(i)]), usage=usage) for i in range(5)))
    m = Made(fake, max_cost=0.012, prices={"input_per_1k": 0.01, "output_per_1k": 0.02})
    while m.proposer.propose(1):
        pass
    assert m.proposer.exhausted.startswith("LLM money budget reached")
    assert len(fake.requests) >= 1 and m.proposer.cost_used == pytest.approx(0.005 * len(fake.requests))
    assert m.proposer.cost_used <= 0.012
    spent = (m.proposer.tokens_used, m.proposer.cost_used)
    resumed = LLMProposer(conditional_context(), llm=m.spec, llm_spent=spent)
    assert resumed.propose(2) == [] and resumed.exhausted.startswith("LLM money budget reached")


def test_without_an_endpoint_it_proposes_at_random_and_says_so() -> None:
    proposer = LLMProposer(conditional_context())
    proposals = proposer.propose(4)
    assert len(proposals) == 4 and len({p.key for p in proposals}) == 4
    assert all(p.reason.startswith("llm unavailable: no search.llm endpoint") for p in proposals)


def test_parse_answer_reads_fences_and_bare_lists() -> None:
    assert parse_answer('```json\n{"proposals": [{"trainer": "a"}], "notes": "n"}\n```') == (
        [{"trainer": "a"}],
        "n",
        "",
    )
    assert parse_answer('Here you go: {"proposals": []} hope it helps')[2] == ""
    assert parse_answer('[{"trainer": "a"}]') == ([{"trainer": "a"}], "", "")
    assert "not valid JSON" in parse_answer('{"proposals": [')[2]


def random_pick(i: int) -> dict[str, Any]:
    return {"trainer": "tree", "params": {"max_depth": 2 + i % 10, "criterion": ["gini", "entropy"][i // 10 % 2]}}


class TestLLMProposerContract(ProposerContract):
    """The Proposer contract, with the model answered by the fake server."""

    @pytest.fixture
    def proposer_factory(self, fake: FakeLLM) -> ProposerFactory:
        def make(context: SearchContext) -> LLMProposer:
            fake.responder = random_responder(context)
            spec = LLMSpec(base_url=fake.base_url, model="fake", api_key_env=KEY_ENV)
            return LLMProposer(context, llm=spec)

        return make

    @pytest.fixture
    def proposer_learns(self) -> bool:
        return False


def test_a_wrongly_typed_trainer_is_recorded_and_repaired(fake: FakeLLM) -> None:
    listed = [{"trainer": ["tree"], "params": GOOD[0]["params"], "reason": "a list, not a name"}]
    fake.script(
        ok(proposals_text(listed), usage={"prompt_tokens": 50, "completion_tokens": 7}), ok(proposals_text(GOOD[:1]))
    )
    m = Made(fake)
    (p,) = m.proposer.propose(1)
    assert p.trainer == "tree" and p.reason == GOOD[0]["reason"]
    assert m.statuses == ["invalid", "ok"]
    assert m.calls[0].prompt_tokens == 50 and m.calls[0].completion_tokens == 7  # counted in the totals
    assert "trainer must be a string" in m.calls[0].error
    assert "trainer must be a string" in fake.requests[1]["body"]["messages"][-1]["content"]  # the repair


def test_a_trickled_answer_is_cut_off_at_the_timeout_for_the_whole_request(fake: FakeLLM) -> None:
    fake.script(trickle(proposals_text(GOOD), every=0.1))
    m = Made(fake, timeout=1.0, retries=0)
    (p,) = m.proposer.propose(1)
    assert p.reason.startswith("llm unavailable") and "bounds the whole request" in p.reason
    assert m.statuses == ["timeout"]
    assert 0 < fake.trickled[0] < len(proposals_text(GOOD))  # the client stopped listening long before the end
