"""The LLM call log: every request an LLM proposer sent, with its answer, tokens, cost and outcome.

A call is data, not a decision (the proposals it produced are recorded as trials, with their events), so no
audit event is appended per call. A call names the proposals it produced by their keys (``Proposal.key``,
``proposals.key`` in the store), which is how ``darkfab proposals`` joins the two.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..errors import StoreError
from ..redact import redact, redact_value
from ._base import Repository, inserted_id, one_of
from ._codec import normalize
from ._schema import llm_calls

LLM_CALL_STATUSES: tuple[str, ...] = ("reserved", "ok", "invalid", "error", "429", "timeout")
"""``reserved``: sent and counted at its most (prompt and ``max_tokens``) until its outcome settles it."""


@dataclass(frozen=True)
class LLMCallRecord:
    """One stored request to an LLM; ``proposal_keys`` are the keys of the proposals its answer produced."""

    id: int
    factory_id: int
    campaign_id: int | None
    call_id: str
    proposer: str
    model: str
    request: list[dict[str, Any]]
    response: str
    status: str
    error: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    latency_s: float
    created_at: datetime
    proposal_keys: list[str]

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise StoreError(f"{what} of an LLM call must be an integer >= 0, got {value!r}")
    return value


class LLMCalls(Repository):
    """The ``llm_calls`` table."""

    def add_llm_call(
        self,
        *,
        factory_id: int,
        campaign_id: int | None,
        call_id: str,
        proposer: str,
        model: str,
        request: Sequence[Mapping[str, Any]],
        response: str,
        status: str,
        error: str = "",
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost: float = 0.0,
        latency_s: float = 0.0,
        proposal_keys: Sequence[str] = (),
        created_at: datetime | None = None,
    ) -> LLMCallRecord:
        """Store one request and its outcome (``LLMCall.as_record()`` gives every field but the first two).

        A request is first stored as ``reserved`` (counted at its most before it is sent); its outcome, stored
        later under the same ``call_id`` and campaign, replaces that row in one transaction (after the rows of
        its retried attempts, in id order), so a process killed while a request is in flight leaves the
        reservation counted by :meth:`llm_usage`.
        """
        one_of(status, LLM_CALL_STATUSES, "LLM call status")
        if not isinstance(call_id, str) or not call_id or len(call_id) > 64:
            raise StoreError(f"call_id must be a non-empty string of at most 64 characters, got {call_id!r:.80}")
        try:
            messages = normalize({"messages": [dict(m) for m in request]})["messages"]
        except (TypeError, ValueError) as err:
            raise StoreError(f"the request of LLM call {call_id}: {err}") from None
        secrets = self._base._secrets()  # prompts quote trial errors; answers may quote them back
        messages = redact_value(messages, secrets)
        response = redact(str(response), secrets)
        error = redact(str(error), secrets)
        values: dict[str, Any] = {
            "factory_id": factory_id,
            "campaign_id": campaign_id,
            "call_id": call_id,
            "proposer": str(proposer),
            "model": str(model),
            "request": messages,
            "response": str(response),
            "status": status,
            "error": str(error),
            "prompt_tokens": _count(prompt_tokens, "prompt_tokens"),
            "completion_tokens": _count(completion_tokens, "completion_tokens"),
            "cost": float(cost),
            "latency_s": float(latency_s),
            "created_at": created_at or self._base.clock(),
            "proposal_keys": [str(k) for k in proposal_keys],
        }
        c = llm_calls.c
        with self._base._write(f"record LLM call {call_id}", chain=False) as conn:
            held = conn.execute(
                sa.select(c.id).where(
                    c.factory_id == factory_id,
                    c.campaign_id.is_(None) if campaign_id is None else c.campaign_id == campaign_id,
                    c.call_id == call_id,
                    c.status == "reserved",
                )
            ).first()
            if held is not None and status != "reserved":  # settled: the outcome takes the reservation's place
                conn.execute(llm_calls.delete().where(c.id == held[0]))
            new_id = inserted_id(conn.execute(llm_calls.insert(), values))
        return LLMCallRecord(id=new_id, **values)

    def list_llm_calls(
        self,
        *,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        status: str | None = None,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        """Stored LLM calls oldest first; with ``limit``, the newest ``limit`` of them (still oldest first)."""
        c = llm_calls.c
        query = sa.select(llm_calls)
        if factory_id is not None:
            query = query.where(c.factory_id == factory_id)
        if campaign_id is not None:
            query = query.where(c.campaign_id == campaign_id)
        if status is not None:
            query = query.where(c.status == one_of(status, LLM_CALL_STATUSES, "LLM call status"))
        newest_first = limit is not None
        query = query.order_by(c.id.desc() if newest_first else c.id).limit(limit)
        with self._base._read("list LLM calls") as conn:
            found = [LLMCallRecord(**r._mapping) for r in conn.execute(query)]
        if newest_first:
            found.reverse()
        return found

    def llm_usage(self, campaign_id: int) -> tuple[int, float]:
        """(tokens, cost) the campaign's LLM calls spent: what a resumed campaign counts against its budgets."""
        c = llm_calls.c
        query = sa.select(
            sa.func.coalesce(sa.func.sum(c.prompt_tokens + c.completion_tokens), 0),
            sa.func.coalesce(sa.func.sum(c.cost), 0.0),
        ).where(c.campaign_id == campaign_id)
        with self._base._read("sum LLM usage") as conn:
            tokens, cost = conn.execute(query).one()
        return int(tokens), float(cost)
