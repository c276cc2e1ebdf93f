"""An AI judge teaches the reward too (RLAIF with a constitution): `darkfab judge`.

The factory file names the judge and its principles::

    reward:
      judge: {base_url: http://localhost:11434/v1, model: llama3.1, max_tokens_total: 200000}
      constitution:
        - prefer the simpler model when the accuracy difference is within its confidence interval
        - never accept a larger fairness gap for accuracy

:func:`ask_judge` picks pairs as `darkfab compare` does (:func:`darkfab.runtime.next_pair`: the pair whose order
the reward is least sure of, never one that already has an answer), sends the judge both report cards and the
constitution, and reads one JSON object back: a critique of each candidate against each principle, then the
choice (``1``, ``2`` or ``tie``). The critique becomes the preference's rationale, its source ``judge:MODEL``;
a person's preference on the same pair outranks it (:meth:`darkfab.store.Store.list_preferences`).

Every request goes through :class:`darkfab.propose.LLMExchange`, as the LLM proposers' do: the same client
(429s and timeouts retried by ``reward.judge.retries``), the same budget (``max_tokens_total`` and ``max_cost``
are hard limits, here over all the factory's judge calls, earlier runs included) and the same record (each
attempt a row of ``llm_calls``, proposer ``judge``). An answer that is not the JSON asked for is sent back with
what is wrong (``max_repairs`` times), then the pair is dropped; each such answer is an ``invalid`` row with its
reason, and the run ends with one ``judge_finished`` event listing what was recorded, dropped and why it stopped.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SpecError
from ._teach import declared_reward, next_pair, prefer, report_card

if TYPE_CHECKING:
    from ..evaluate import RewardModel
    from ..propose import ChatClient, ChatResult, LLMCall, LLMExchange
    from ..store import PreferenceRecord, Store, TrialRecord
    from ._factory import Factory

__all__ = [
    "FAILURES_IN_A_ROW",
    "JUDGE_PROPOSER",
    "DroppedPair",
    "JudgeRun",
    "Verdict",
    "ask_judge",
    "judge_messages",
    "parse_verdict",
]

JUDGE_PROPOSER = "judge"
"""The ``proposer`` of the judge's rows in ``llm_calls``."""
FAILURES_IN_A_ROW = 3
"""Pairs in a row the endpoint gave no answer for (429, timeout, error after its retries) before the judge stops."""
_WINNERS = {"1": "a", "2": "b", "tie": "tie", "=": "tie"}


@dataclass(frozen=True)
class Verdict:
    """A usable answer: the winner (``a``, ``b`` or ``tie``) and the critique, as it goes on record."""

    winner: str
    rationale: str


@dataclass(frozen=True)
class DroppedPair:
    """A pair the judge gave no usable answer about, and why."""

    trial_a: int
    trial_b: int
    reason: str


@dataclass(frozen=True)
class JudgeRun:
    """What one `darkfab judge` did: the preferences it recorded, the pairs it dropped and why it stopped."""

    model: str
    recorded: tuple[PreferenceRecord, ...]
    dropped: tuple[DroppedPair, ...]
    stopped_because: str
    tokens_used: int
    cost_used: float
    asked: int = 0
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "asked": self.asked,
            "calls": self.calls,
            "recorded": [
                {
                    "preference": p.id,
                    "trial_a": p.trial_a,
                    "trial_b": p.trial_b,
                    "winner": p.winner,
                    "source": p.source,
                    "rationale": p.rationale,
                }
                for p in self.recorded
            ],
            "dropped": [asdict(d) for d in self.dropped],
            "stopped_because": self.stopped_because,
            "tokens_used": self.tokens_used,
            "cost_used": self.cost_used,
        }


def judge_messages(
    constitution: Sequence[str], card_1: dict[str, Any], card_2: dict[str, Any], *, about: str = ""
) -> list[dict[str, str]]:
    """The request: the constitution, both report cards, and the JSON answer asked for."""
    principles = "\n".join(f"{i}. {p}" for i, p in enumerate(constitution, start=1))
    shape = {
        "critique": [
            {"principle": i, "candidate_1": "how candidate 1 fares", "candidate_2": "how candidate 2 fares"}
            for i in range(1, len(constitution) + 1)
        ],
        "winner": "1 or 2 or tie",
        "reason": "one sentence: why this choice follows from the principles",
    }
    system = (
        "You judge machine-learning models for the people who own them. Judge only by their constitution:\n"
        f"{principles}\n"
        "First critique each candidate against each principle, citing its figures; then choose the better model. "
        "Answer with one JSON object and nothing else, of this shape:\n"
        f"{json.dumps(shape, indent=1)}"
    )
    user = (
        (f"What the model is for: {about}\n" if about else "")
        + f"Candidate 1:\n{json.dumps(card_1, indent=1, default=str)}\n"
        + f"Candidate 2:\n{json.dumps(card_2, indent=1, default=str)}\n"
        + "Which is the better model by the constitution?"
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    body = re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", text.strip())
    try:
        value = json.loads(body)
    except json.JSONDecodeError:  # perhaps an object inside prose: take the outermost braces
        start, end = body.find("{"), body.rfind("}")
        if start < 0 or end < start:
            return None, f"the answer holds no JSON object: {text.strip()[:120]!r}"
        try:
            value = json.loads(body[start : end + 1])
        except json.JSONDecodeError as err:
            return None, f"the answer is not valid JSON ({err.msg} at character {err.pos})"
    if not isinstance(value, dict):
        return None, f"the answer is JSON but not an object: {type(value).__name__}"
    return value, ""


def parse_verdict(text: str, constitution: Sequence[str]) -> tuple[Verdict | None, list[str]]:
    """The judge's answer read and type-checked: a Verdict, or None and every problem found."""
    value, problem = _json_object(text)
    if value is None:
        return None, [problem]
    problems: list[str] = []
    raw = value.get("winner")
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        problems.append(f'`winner` must be "1", "2" or "tie", got {json.dumps(raw)[:40]}')
        winner = None
    else:
        winner = _WINNERS.get(str(raw).strip().lower())
        if winner is None:
            problems.append(f'`winner` must be "1", "2" or "tie", got {json.dumps(raw)[:40]}')
    critique = value.get("critique")
    lines: dict[int, str] = {}
    if not isinstance(critique, list):
        problems.append(f"`critique` must be a list with one entry per principle, got {type(critique).__name__}")
        critique = []
    for k, entry in enumerate(critique):
        if not isinstance(entry, dict):
            problems.append(f"critique entry {k + 1} must be an object, got {type(entry).__name__}")
            continue
        n = entry.get("principle")
        texts = [t.strip() if isinstance(t, str) else "" for t in (entry.get("candidate_1"), entry.get("candidate_2"))]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(constitution):
            problems.append(f"critique entry {k + 1}: `principle` must be a number from 1 to {len(constitution)}")
        elif not all(texts):
            problems.append(f"critique of principle {n}: `candidate_1` and `candidate_2` must be non-empty text")
        else:
            lines[n] = f"principle {n} ({constitution[n - 1]}): 1: {texts[0]} | 2: {texts[1]}"
    missing = [str(n) for n in range(1, len(constitution) + 1) if n not in lines]
    if critique and missing and not problems:
        problems.append(f"the critique leaves out principle(s) {', '.join(missing)}")
    elif not critique and isinstance(value.get("critique"), list):
        problems.append("`critique` is empty; critique each candidate against each principle")
    reason = value.get("reason", "")
    if not isinstance(reason, str):
        problems.append(f"`reason` must be text, got {type(reason).__name__}")
    if problems or winner is None:
        return None, problems
    chose = {"a": "chose 1", "b": "chose 2", "tie": "called it a tie"}[winner]
    rationale = "\n".join([*(lines[n] for n in sorted(lines)), f"{chose}: {reason.strip()}".rstrip(": ")])
    return Verdict(winner, rationale), []


def _repair(answer: str, problems: list[str]) -> list[dict[str, str]]:
    return [
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": "That answer cannot be used: "
            + "; ".join(problems)
            + ". Answer again with only the JSON object asked for.",
        },
    ]


def _judge_spent(store: Store, factory_id: int) -> tuple[int, float]:
    calls = [c for c in store.list_llm_calls(factory_id=factory_id) if c.proposer == JUDGE_PROPOSER]
    return sum(c.tokens for c in calls), sum(c.cost for c in calls)


class _Session:
    """One run of the judge over one factory: the exchange, the pairs asked, what came of them."""

    def __init__(self, factory: Factory, client: ChatClient | None) -> None:
        from ..propose import ChatClient, LLMExchange

        spec = factory.spec.reward.judge
        if spec is None:
            raise SpecError(
                f"factory {factory.name!r} names no judge; fix: add `reward.judge` (an OpenAI-compatible endpoint) "
                "and `reward.constitution` (principles in plain words) to its file, see the README's "
                "'Teaching the factory what you want'"
            )
        if spec.api_key_env and not os.environ.get(spec.api_key_env):
            raise SpecError(
                f"the environment variable {spec.api_key_env} (reward.judge.api_key_env) is not set, so the judge "
                f"cannot be asked; fix: export {spec.api_key_env}=<your key>, or empty api_key_env for a local server"
            )
        self.factory = factory
        self.store = factory.store
        self.fid = self.store.get_factory(factory.name).id
        self.spec = spec
        self.source = f"judge:{spec.model}"
        self.reward: RewardModel = declared_reward(factory)
        self.exchange: LLMExchange = LLMExchange(
            proposer=JUDGE_PROPOSER,
            spec=spec,
            client=client or ChatClient(spec, field="reward.judge"),
            sink=self._keep,
            spent=_judge_spent(self.store, self.fid),
        )
        self.run_id = secrets.token_hex(4)
        self.calls = 0

    def _keep(self, call: LLMCall) -> None:
        self.store.add_llm_call(factory_id=self.fid, campaign_id=None, **call.as_record())

    def ask(self, messages: list[dict[str, str]], call_id: str) -> ChatResult | None:
        result = self.exchange.ask(messages, call_id=call_id)
        self.calls += result is not None
        return result

    def judge_pair(self, a: TrialRecord, b: TrialRecord, n: int) -> tuple[Verdict | None, str, bool]:
        """(verdict, why there is none, whether the endpoint answered at all)."""
        messages = judge_messages(
            self.factory.spec.reward.constitution,
            report_card(a, self.reward),
            report_card(b, self.reward),
            about=self.factory.spec.objective.description or "",
        )
        problems: list[str] = []
        tries = 0
        for k in range(self.spec.max_repairs + 1):
            call_id = f"judge-{self.run_id}-{n}.{k}"
            result = self.ask(messages, call_id)
            if result is None:
                return None, self.exchange.budget.exhausted, True
            if not result.ok:
                self.exchange.record(call_id, messages, result, result.status, result.error)
                return None, f"no answer ({result.status}): {result.error}", False
            tries += 1
            verdict, problems = parse_verdict(result.text, self.factory.spec.reward.constitution)
            self.exchange.record(call_id, messages, result, "invalid" if problems else "ok", "; ".join(problems))
            if verdict is not None:
                return verdict, "", True
            if self.exchange.budget.exhausted:
                break
            messages = [*messages, *_repair(result.text, problems)]
        return None, f"no usable answer in {tries} tr{'y' if tries == 1 else 'ies'}; last: {'; '.join(problems)}", True


def ask_judge(factory: Factory, *, pairs: int = 10, client: ChatClient | None = None) -> JudgeRun:
    """Ask the factory's judge about at most ``pairs`` pairs; records preferences, LLM calls and one event."""
    if pairs < 1:
        raise SpecError(f"--pairs must be at least 1, got {pairs}")
    session = _Session(factory, client)
    budget = session.exchange.budget
    recorded: list[PreferenceRecord] = []
    dropped: list[DroppedPair] = []
    asked: set[tuple[int, int]] = set()
    failures, stopped = 0, ""
    while len(asked) < pairs and not budget.exhausted:
        pair = next_pair(factory, asked=asked, reward=session.reward)
        if pair is None:
            stopped = "no pair left to ask about (every pair of feasible candidates has an answer)"
            break
        a, b = pair
        asked.add((a.id, b.id))
        sent = session.calls
        verdict, why, answered = session.judge_pair(a, b, len(asked))
        if verdict is not None:
            recorded.append(
                prefer(factory, a.id, b.id, verdict.winner, source=session.source, rationale=verdict.rationale)
            )
            failures = 0
            continue
        if why == budget.exhausted and session.calls == sent:  # nothing was sent about this pair
            asked.discard((a.id, b.id))
            break
        dropped.append(DroppedPair(a.id, b.id, why))
        failures = 0 if answered else failures + 1
        if failures >= FAILURES_IN_A_ROW:
            stopped = f"the judge's endpoint gave no answer for {failures} pairs in a row; last: {why}"
            break
    if not stopped and budget.exhausted:
        stopped = f"{budget.exhausted}; fix: raise reward.judge.max_tokens_total or max_cost to ask the judge more"
    stopped = stopped or f"{pairs} pair(s) asked, as many as --pairs allows"
    run = JudgeRun(
        model=session.spec.model,
        recorded=tuple(recorded),
        dropped=tuple(dropped),
        stopped_because=stopped,
        tokens_used=budget.tokens_used,
        cost_used=budget.cost_used,
        asked=len(asked),
        calls=session.calls,
    )
    _record_run(session.store, session.fid, run)
    return run


def _record_run(store: Store, factory_id: int, run: JudgeRun) -> None:
    reason = (
        f"judge:{run.model} asked about {run.asked} pair(s): {len(run.recorded)} preference(s) recorded, "
        f"{len(run.dropped)} dropped; stopped: {run.stopped_because}"
    )
    data = run.as_dict()
    data["recorded"] = [p["preference"] for p in data["recorded"]]
    store.append_event(kind="judge_finished", reason=reason, factory_id=factory_id, data=data)
