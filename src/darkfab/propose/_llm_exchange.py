"""The one way darkfab's LLM proposers call a model: budget, reserve, ask, record, settle.

:class:`LLMBudget` is the one budget object of every LLM proposer: it holds the campaign's token and money
budgets (``search.llm.max_tokens_total`` and ``max_cost``), both hard, across runs. A request is *capped*
before it is sent (its ``max_tokens`` lowered to what is left; not sent when what is left cannot pay for its
prompt and a minimal answer), *reserves* its most (its prompt and that ``max_tokens``) and is *settled* to what
it really cost once it is answered, so a process killed while a request is in flight has already counted that
request's most: a resumed campaign reads the reservation from the store (``llm_spent``) and cannot spend past
its budget. When an exchange ends, :meth:`LLMExchange.finish` stops the budget at once if it cannot pay for
another prompt as long as that exchange's opening one. Once stopped, :attr:`LLMBudget.exhausted` says why
(``LLM token budget reached: ...`` or ``LLM money budget reached: ...``) and :attr:`LLMBudget.stop_reason` is
:attr:`~darkfab.events.StopReason.LLM_BUDGET`.

:class:`LLMExchange` is what both proposers (``llm`` and ``llm_code``) call: :meth:`LLMExchange.ask` sends one
request through the budget and records every HTTP attempt as an :class:`LLMCall` (the reservation first, as
status ``reserved``; each retried 429, timeout or error as its own row), and :meth:`LLMExchange.record` stores
the outcome of the exchange under the reservation's id, which settles it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..events import StopReason
from ..spec import LLMSpec
from ._llm_client import ChatClient, ChatResult, messages_tokens

logger = logging.getLogger("darkfab.propose.llm")

MIN_COMPLETION_TOKENS = 64
"""A request is sent only when the budget left can pay for its prompt and at least this many answer tokens."""


@dataclass(frozen=True)
class LLMCall:
    """One HTTP request to the model and what came of it, as the factory stores it (table ``llm_calls``)."""

    call_id: str
    proposer: str
    model: str
    request: list[dict[str, Any]]  # the messages sent
    response: str  # the text answered ("" when none)
    status: str  # reserved (sent, not yet answered) | ok | invalid | error | 429 | timeout
    error: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    proposal_keys: tuple[str, ...] = ()

    @classmethod
    def answered(
        cls,
        *,
        call_id: str,
        proposer: str,
        model: str,
        messages: list[dict[str, Any]],
        result: ChatResult,
        status: str,
        error: str,
        latency_s: float,
        proposal_keys: tuple[str, ...] = (),
    ) -> LLMCall:
        """The record of a request that got an answer (or gave up): its text, tokens and cost from ``result``."""
        return cls(
            call_id=call_id,
            proposer=proposer,
            model=model,
            request=[dict(m) for m in messages],
            response=result.text,
            status=status,
            error=error,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            cost=result.cost,
            latency_s=latency_s,
            proposal_keys=proposal_keys,
        )

    def as_record(self) -> dict[str, Any]:
        """The keyword arguments of ``Store.add_llm_call`` (besides factory and campaign)."""
        out = asdict(self)
        out["proposal_keys"] = list(self.proposal_keys)
        return out


LLMCallSink = Callable[[LLMCall], None]


@dataclass(frozen=True)
class Reservation:
    """What a request in flight has been counted at: its prompt and its whole ``max_tokens``."""

    prompt_tokens: int
    max_tokens: int
    cost: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.max_tokens


class LLMBudget:
    """The tokens and money the LLM may still spend in this campaign; hard limits, never overshot."""

    def __init__(self, spec: LLMSpec, cost_of: Callable[[int, int], float], spent: tuple[int, float] = (0, 0.0)):
        """
        Args:
            spec: the endpoint's ``max_tokens``, ``max_tokens_total``, ``max_cost`` and prices.
            cost_of: the price of (prompt tokens, completion tokens).
            spent: what the campaign already spent or reserved (a resumed one reads it from the store).
        """
        self.spec = spec
        self._cost_of = cost_of
        self.tokens_used = int(spent[0])
        self.cost_used = float(spent[1])
        self.exhausted = ""
        """Why the LLM stopped for good (its token or money budget is spent); empty while it may be asked."""
        self.check(0)

    def allowance(self, prompt: int) -> int | None:
        """``max_tokens`` for a request whose prompt is ``prompt`` tokens, lowered to what the budgets can pay;
        None (and :attr:`exhausted` set) when they cannot pay for the prompt and a minimal answer."""
        if self.exhausted:
            return None
        spec = self.spec
        max_tokens = spec.max_tokens
        if spec.max_tokens_total is not None:
            max_tokens = min(max_tokens, spec.max_tokens_total - self.tokens_used - prompt)
        if spec.max_cost is not None:
            out_price = spec.prices.output_per_1k / 1000.0
            left = spec.max_cost - self.cost_used - self._cost_of(prompt, 0)
            if out_price > 0:
                max_tokens = min(max_tokens, math.floor(left / out_price))
            elif left < 0:
                max_tokens = 0
        if max_tokens < MIN_COMPLETION_TOKENS:
            self.check(prompt + MIN_COMPLETION_TOKENS)
            if not self.exhausted:  # pragma: no cover - the checks above agree with check()
                self.exhausted = "LLM budget reached: the next request cannot be paid for"
            return None
        return max_tokens

    @property
    def stop_reason(self) -> StopReason | None:
        """``StopReason.LLM_BUDGET`` once the budget is spent (:attr:`exhausted` says which and how); else None."""
        return StopReason.LLM_BUDGET if self.exhausted else None

    def expect(self, prompt: int) -> None:
        """The next request's prompt will be at least ``prompt`` tokens: stop now if the budgets cannot pay for
        it and a minimal answer, rather than find out when it is about to be sent."""
        self.check(prompt + MIN_COMPLETION_TOKENS)

    def reserve(self, prompt: int, max_tokens: int) -> Reservation:
        """Count a request at its most before it is sent."""
        held = Reservation(prompt, max_tokens, self._cost_of(prompt, max_tokens))
        self.tokens_used += held.tokens
        self.cost_used += held.cost
        return held

    def settle(self, held: Reservation, result: ChatResult) -> None:
        """Replace a reservation by what the request really cost."""
        self.tokens_used += result.tokens - held.tokens
        self.cost_used += result.cost - held.cost
        self.check(0)

    def check(self, need: int) -> None:
        """Mark the LLM as stopped when a budget is spent, or (``need`` > 0) cannot pay ``need`` more tokens."""
        if self.exhausted:
            return
        total, max_cost = self.spec.max_tokens_total, self.spec.max_cost
        tokens_short = total is not None and (self.tokens_used >= total or self.tokens_used + need > total)
        money_short = max_cost is not None and (
            self.cost_used >= max_cost
            or (
                need > 0
                and self.cost_used + self._cost_of(max(0, need - MIN_COMPLETION_TOKENS), MIN_COMPLETION_TOKENS)
                > max_cost
            )
        )
        later = "; the next request cannot be paid for" if need else ""
        if tokens_short:
            self.exhausted = f"LLM token budget reached: {self.tokens_used} of {total} tokens spent{later}"
        elif money_short:
            self.exhausted = f"LLM money budget reached: {self.cost_used:.4g} of {max_cost:g} spent{later}"
        if self.exhausted:
            logger.info("%s; no more requests are sent", self.exhausted)


class LLMExchange:
    """Sends a proposer's requests through its budget and records every attempt."""

    def __init__(
        self,
        *,
        proposer: str,
        spec: LLMSpec,
        client: ChatClient,
        sink: LLMCallSink | None,
        spent: tuple[int, float] = (0, 0.0),
    ) -> None:
        self.proposer = proposer
        self.spec = spec
        self.client = client
        self.sink = sink
        self.budget = LLMBudget(spec, client.cost_of, spent)
        self._held: dict[str, Reservation] = {}

    def ask(self, messages: Sequence[dict[str, Any]], *, call_id: str) -> ChatResult | None:
        """One request (with the client's retries); None, sending nothing, when the budget cannot pay for it.

        The caller stores the outcome with :meth:`record` under the same ``call_id``.
        """
        prompt = messages_tokens(messages)
        max_tokens = self.budget.allowance(prompt)
        if max_tokens is None:
            return None
        held = self.budget.reserve(prompt, max_tokens)
        self._held[call_id] = held
        self.emit(
            LLMCall(
                call_id=call_id,
                proposer=self.proposer,
                model=self.spec.model,
                request=[dict(m) for m in messages],
                response="",
                status="reserved",
                error="sent; counted at its prompt and max_tokens until it is answered",
                prompt_tokens=held.prompt_tokens,
                completion_tokens=held.max_tokens,
                cost=held.cost,
                latency_s=0.0,
            )
        )
        result = self.client.complete(messages, max_tokens=max_tokens)
        self.budget.settle(held, result)
        for j, attempt in enumerate(result.attempts[:-1]):  # each retried 429, timeout or error: its own row
            self.emit(
                LLMCall(
                    call_id=f"{call_id}.{j}",
                    proposer=self.proposer,
                    model=self.spec.model,
                    request=[dict(m) for m in messages],
                    response="",
                    status=attempt.status,
                    error=attempt.error + (f"; retried after {attempt.waited_s:.2f}s" if attempt.waited_s else ""),
                    prompt_tokens=0,
                    completion_tokens=0,
                    cost=0.0,
                    latency_s=attempt.latency_s,
                )
            )
        return result

    def finish(self, opening: Sequence[dict[str, Any]]) -> None:
        """An exchange ended; the next one opens with a prompt at least as long as ``opening`` (this one's system
        and first user message), so the budget stops now if it cannot pay for that."""
        self.budget.expect(messages_tokens(opening))

    def record(
        self,
        call_id: str,
        messages: Sequence[dict[str, Any]],
        result: ChatResult,
        status: str,
        error: str,
        keys: tuple[str, ...] = (),
    ) -> LLMCall:
        """Store the outcome of the request ``call_id`` (this settles its reservation); returns the LLMCall."""
        self._held.pop(call_id, None)
        last = result.attempts[-1].latency_s if result.attempts else result.latency_s
        call = LLMCall.answered(
            call_id=call_id,
            proposer=self.proposer,
            model=self.spec.model,
            messages=list(messages),
            result=result,
            status=status,
            error=error,
            latency_s=last,
            proposal_keys=keys,
        )
        self.emit(call)
        return call

    def emit(self, call: LLMCall) -> None:
        if self.sink is None:
            return
        try:
            self.sink(call)
        except Exception:  # a record that cannot be written must not lose the proposals
            logger.exception("could not record LLM call %s", call.call_id)
