"""`darkfab prefer`, `darkfab compare`, `darkfab judge` and `darkfab reward`: teach the factory what you want.

``compare`` shows two candidates side by side (the pair whose order the reward is least sure of) and reads
``1``, ``2``, ``=`` or ``s`` (skip) until the person types ``q`` or the input ends; it works over SSH and in
tmux. ``judge`` asks the factory's AI judge (``reward.judge``) the same questions, with its constitution
(:mod:`darkfab.teach_judge`). ``prefer`` records one answer without asking. ``reward`` shows the declared and learned weights,
the held-out agreement of each and the preferences by source; ``--learn`` re-fits and gates the learned
reward and records the decision. cli.py calls :func:`register` to add the commands to `darkfab`.
"""

from __future__ import annotations

import getpass
import json
import math
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ..errors import SpecError
from ._common import Commands, FactoryArg, FactoryOpt, JsonOpt, StoreOpt, open_factory

commands = Commands()
SourceOpt = Annotated[
    str | None, typer.Option("--as", help="who answers: person:NAME or judge:MODEL (default: person:$USER)")
]


def _source(given: str | None) -> str:
    if given:
        return given if ":" in given else f"person:{given}"
    try:
        return f"person:{getpass.getuser()}"
    except (KeyError, OSError):
        return "person:unknown"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> Table:
    table = Table(title=f"1: trial {a['trial']}   vs   2: trial {b['trial']}", show_lines=False)
    table.add_column("")
    table.add_column("1", justify="right")
    table.add_column("2", justify="right")
    table.add_column("differs by", justify="right")
    table.add_row("trainer", a["trainer"], b["trainer"], "")
    metrics = sorted(set(a["metrics"]) | set(b["metrics"]))
    gaps: list[tuple[float, str]] = []
    for m in metrics:
        x, y = a["metrics"].get(m, math.nan), b["metrics"].get(m, math.nan)
        rel = abs(x - y) / max(abs(x), abs(y), 1e-12) if math.isfinite(x) and math.isfinite(y) else 0.0
        gaps.append((rel, m))
        table.add_row(m, _fmt(x), _fmt(y), f"{rel:.0%}")
    table.add_row("reward (declared)", _fmt(a["reward"]), _fmt(b["reward"]), "")
    table.add_row("params", json.dumps(a["params"])[:60], json.dumps(b["params"])[:60], "")
    most = sorted(gaps, reverse=True)[:3]
    table.caption = "differs most: " + ", ".join(m for _, m in most if _ > 0)
    return table


@commands.command()
def judge(
    factory: FactoryArg = None,
    pairs: Annotated[int, typer.Option("--pairs", help="ask about at most this many pairs")] = 10,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """Ask the factory's AI judge (reward.judge) which of two candidates its constitution prefers, pair by pair."""
    from ..runtime import ask_judge

    with open_factory(factory, store) as fac:
        run = ask_judge(fac, pairs=pairs)
    if as_json:
        sys.stdout.write(json.dumps({"factory": fac.name, **run.as_dict()}, indent=2) + "\n")
        return
    console = Console()
    for p in run.recorded:
        shown = {"a": f"trial {p.trial_a}", "b": f"trial {p.trial_b}", "tie": "neither"}[p.winner]
        console.print(f"{p.source} prefers {shown} (trials {p.trial_a} vs {p.trial_b})", markup=False)
        console.print("  " + p.rationale.replace("\n", "\n  "), markup=False)
    for d in run.dropped:
        console.print(f"dropped trials {d.trial_a} vs {d.trial_b}: {d.reason}", markup=False)
    console.print(
        f"{len(run.recorded)} preferences recorded, {len(run.dropped)} pairs dropped, {run.tokens_used} tokens "
        f"spent by the judge so far; stopped: {run.stopped_because}",
        markup=False,
    )
    console.print("`darkfab reward --learn` fits and gates the learned reward")


@commands.command()
def prefer(
    trial_a: Annotated[int, typer.Argument(help="the first trial's id (`darkfab trials`)")],
    trial_b: Annotated[int, typer.Argument(help="the second trial's id")],
    winner: Annotated[str, typer.Argument(help="a, b or tie (also 1, 2, =)")],
    factory: FactoryOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="why (kept on record)")] = "",
    who: SourceOpt = None,
    store: StoreOpt = None,
) -> None:
    """Record which of two trials is the better model (a person's answer, or a judge's with --as judge:M)."""
    from ..runtime import prefer as record

    choice = {"1": "a", "2": "b", "=": "tie"}.get(winner, winner)
    if choice not in ("a", "b", "tie"):
        raise SpecError(f"the winner must be a, b or tie (or 1, 2, =); got {winner!r}")
    with open_factory(factory, store) as fac:
        rec = record(fac, trial_a, trial_b, choice, source=_source(who), rationale=reason)
    print(f"preference {rec.id} recorded: {rec.source} prefers {rec.winner} (trials {trial_a} vs {trial_b})")


@commands.command()
def compare(
    factory: FactoryArg = None,
    who: SourceOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="ask at most this many pairs")] = 30,
    store: StoreOpt = None,
) -> None:
    """Show two candidates side by side and record your preference: 1, 2, = (tie), s (skip), q (quit)."""
    from ..runtime import declared_reward, next_pair, prefer, report_card

    console = Console()
    source = _source(who)
    answered = 0
    with open_factory(factory, store) as fac:
        reward = declared_reward(fac)
        skipped: set[tuple[int, int]] = set()
        while answered < limit:
            pair = next_pair(fac, asked=skipped, reward=reward)
            if pair is None:
                console.print("no pair left to ask about")
                break
            a, b = pair
            console.print(_side_by_side(report_card(a, reward), report_card(b, reward)))
            console.print("which is better? [1] first  [2] second  [=] tie  [s] skip  [q] quit: ", end="", markup=False)
            line = sys.stdin.readline()
            if not line:
                break
            answer = line.strip().lower()
            if answer == "q":
                break
            if answer == "s":
                skipped.add((a.id, b.id))
                continue
            choice = {"1": "a", "2": "b", "=": "tie"}.get(answer)
            if choice is None:
                console.print(f"not an answer: {answer!r}; type 1, 2, =, s or q")
                continue
            prefer(fac, a.id, b.id, choice, source=source)
            answered += 1
            console.print(f"recorded ({answered}): {source} prefers {answer} (trials {a.id} vs {b.id})")
    console.print(f"{answered} preferences recorded; `darkfab reward --learn` fits and gates the learned reward")


@commands.command()
def reward(
    factory: FactoryArg = None,
    learn: Annotated[bool, typer.Option("--learn", help="fit and gate the learned reward now, on record")] = False,
    margin: Annotated[float, typer.Option("--margin", help="agreement the learned reward must add")] = 0.1,
    as_json: JsonOpt = False,
    store: StoreOpt = None,
) -> None:
    """The declared and the learned reward: weights, held-out agreement, preferences by source, the decision."""
    from dataclasses import asdict

    from ..evaluate import judge_learned
    from ..runtime import comparisons, declared_reward, learned_weights
    from ..runtime import learn as learn_now

    with open_factory(factory, store) as fac:
        if learn:
            judgement = learn_now(fac, margin=margin)
        else:
            fid = fac.store.get_factory(fac.name).id
            comps, by_source = comparisons(fac.store, fid)
            judgement, _ = judge_learned(declared_reward(fac), comps, margin=margin, by_source=by_source)
        in_use = learned_weights(fac.store, fac.store.get_factory(fac.name).id)
        mode = fac.spec.objective.reward
    doc = asdict(judgement)
    doc = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in doc.items()}
    doc.update(
        {
            "factory": fac.name,
            "objective_reward": mode,
            "in_use": "learned" if in_use and mode == "learned" else "declared",
        }
    )
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    console = Console()
    table = Table(title=f"reward of {fac.name} ({doc['in_use']} in use; objective.reward: {mode})")
    table.add_column("metric")
    table.add_column("declared", justify="right")
    table.add_column("learned", justify="right")
    for m in sorted(set(judgement.weights_before) | set(judgement.weights_after)):
        table.add_row(m, _fmt(judgement.weights_before.get(m, 0.0)), _fmt(judgement.weights_after.get(m, 0.0)))
    console.print(table)
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(judgement.by_source.items())) or "none"
    console.print(f"preferences: {judgement.n_preferences} ({sources})")
    console.print(judgement.reason)
