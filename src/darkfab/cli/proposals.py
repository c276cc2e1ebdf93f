"""`darkfab proposals`: every proposal of a factory with its proposer, reason and state, and every LLM call.

An LLM proposal is joined to the request that produced it by its key (``llm_calls.proposal_keys``), so each
shows that call's tokens, cost and status; calls that produced nothing (a 429, a timeout, an invalid answer)
are listed too.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ._common import Commands, FactoryArg, JsonOpt, StoreOpt

commands = Commands()


def call_json(c: Any, *, full: bool = False) -> dict[str, Any]:
    """A stored LLM call as `darkfab proposals --json` prints it (``request`` only with ``full``)."""
    out = {
        "id": c.id,
        "call_id": c.call_id,
        "campaign_id": c.campaign_id,
        "proposer": c.proposer,
        "model": c.model,
        "status": c.status,
        "error": c.error,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "tokens": c.prompt_tokens + c.completion_tokens,
        "cost": c.cost,
        "latency_s": round(c.latency_s, 4),
        "created_at": c.created_at.isoformat(),
        "proposal_keys": list(c.proposal_keys),
        "response": c.response,
    }
    if full:
        out["request"] = c.request
    return out


def proposals_json(trials: list[Any], calls: list[Any], *, full: bool = False) -> dict[str, Any]:
    """Proposals (one per trial) joined with the LLM calls that made them, the calls, and their totals."""
    by_key: dict[tuple[int | None, str], Any] = {}
    for c in calls:
        for key in c.proposal_keys:
            by_key[(c.campaign_id, key)] = c
    proposals = []
    for t in trials:
        call = by_key.get((t.campaign_id, t.key))
        member = t.key.partition(":")[0] if t.proposer == "portfolio" and ":" in t.key else None
        proposals.append(
            {
                "trial_id": t.id,
                "campaign_id": t.campaign_id,
                "number": t.number,
                "proposer": t.proposer,
                "member": member,
                "key": t.key,
                "trainer": t.trainer,
                "params": t.params,
                "patch": t.patch.to_json() if t.patch is not None else None,
                "reason": t.reason,
                "state": t.state,
                "value": t.value,
                "reward": t.reward,
                "llm": None
                if call is None
                else {
                    "call_id": call.call_id,
                    "status": call.status,
                    "model": call.model,
                    "prompt_tokens": call.prompt_tokens,
                    "completion_tokens": call.completion_tokens,
                    "cost": call.cost,
                },
            }
        )
    statuses: dict[str, int] = {}
    for c in calls:
        statuses[c.status] = statuses.get(c.status, 0) + 1
    totals = {
        "calls": len(calls),
        "statuses": statuses,
        "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls),
        "cost": sum(c.cost for c in calls),
    }
    return {"proposals": proposals, "llm_calls": [call_json(c, full=full) for c in calls], "llm_totals": totals}


def _text(doc: dict[str, Any], name: str) -> None:
    out = Console()
    t = Table(title=f"proposals of {name}")
    for col in ("trial", "campaign", "state", "proposer", "trainer", "params", "reason", "llm call"):
        t.add_column(col, overflow="fold")
    for p in doc["proposals"]:
        params = ", ".join(f"{k}={v}" for k, v in p["params"].items())
        who = p["proposer"] + (f"/{p['member']}" if p["member"] else "")
        llm = p["llm"]
        call = (
            ""
            if llm is None
            else f"{llm['status']} {llm['prompt_tokens']}+{llm['completion_tokens']} tok {llm['cost']:.4g}"
        )
        t.add_row(
            str(p["trial_id"]),
            str(p["campaign_id"]),
            p["state"],
            who,
            p["trainer"],
            params[:60],
            p["reason"][:90],
            call,
        )
    out.print(t)
    if doc["llm_calls"]:
        c = Table(title="LLM calls")
        for col in (
            "id",
            "campaign",
            "proposer",
            "model",
            "status",
            "tokens",
            "cost",
            "latency s",
            "proposals",
            "error",
        ):
            c.add_column(col, overflow="fold")
        for x in doc["llm_calls"]:
            c.add_row(
                str(x["id"]),
                str(x["campaign_id"]),
                x["proposer"],
                x["model"],
                x["status"],
                f"{x['prompt_tokens']}+{x['completion_tokens']}",
                f"{x['cost']:.4g}",
                f"{x['latency_s']:.2f}",
                str(len(x["proposal_keys"])),
                x["error"][:80],
            )
        out.print(c)
        tot = doc["llm_totals"]
        out.print(
            f"{tot['calls']} LLM calls ({', '.join(f'{k} {v}' for k, v in sorted(tot['statuses'].items()))}), "
            f"{tot['prompt_tokens'] + tot['completion_tokens']} tokens, cost {tot['cost']:.4g}",
            highlight=False,
        )


@commands.command()
def proposals(
    factory: FactoryArg = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    campaign: Annotated[int | None, typer.Option("--campaign", help="only this campaign number")] = None,
    full: Annotated[bool, typer.Option("--full", help="with --json: include each LLM request's messages")] = False,
) -> None:
    """Every proposal with its proposer, reason and state; LLM proposals with their call's tokens, cost, status."""
    from ..runtime import resolve_factory
    from ..store import Store

    with Store(store) as st:
        name = resolve_factory(st, factory)
        fid = st.get_factory(name).id
        campaign_id = None
        if campaign is not None:
            found = [c for c in st.list_campaigns(fid) if c.number == campaign]
            if not found:
                raise SpecError(f"factory {name!r} has no campaign {campaign}; fix: see `darkfab status`")
            campaign_id = found[0].id
        trials = st.list_trials(factory_id=fid, campaign_id=campaign_id)
        calls = st.list_llm_calls(factory_id=fid, campaign_id=campaign_id)
    doc = proposals_json(trials, calls, full=full)
    if as_json:
        sys.stdout.write(json.dumps({"factory": name, **doc}, indent=2, default=str) + "\n")
        return
    _text(doc, name)
