"""The contest between the champion and a challenger routed by canary or shadow.

Once the challenger has answered (canary) or shadowed (shadow) ``deploy.min_requests`` requests, the pure
:func:`judge` compares it with the champion on the figures taken since the pair met (a frozen
:class:`ContestFigures`). The contest then promotes it (``champion`` moves to it, ``challenger`` is deleted)
or rolls it back (``challenger`` is deleted), in ONE store transaction with the decision event
(``challenger_promoted`` / ``challenger_rolled_back``, reason stating the figures, data holding them),
guarded so that nothing is written when another process moved the aliases first.

What is served afterwards is the caller's business: :meth:`Contest.decide` says who won, the service swaps.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..events import EventKind
from ._context import ServeContext
from ._decide import ContestFigures, Figures, judge
from ._deployment import CHALLENGER, CHAMPION, Deployment
from ._router import Routing

log = logging.getLogger("darkfab.serve")


@dataclass(frozen=True)
class Outcome:
    """A contest decided: who serves as champion now, or None when the aliases moved meanwhile (nothing written)."""

    champion: Deployment | None


class Contest:
    """Judges a ripe contest on the live figures of ``book`` and records the decision in ``store``."""

    def __init__(self, ctx: ServeContext, *, latency_floor_ms: float) -> None:
        self.store, self.factory, self.factory_id = ctx.store, ctx.factory, ctx.factory_id
        self.deploy, self.book, self.metrics = ctx.deploy, ctx.book, ctx.metrics
        self.ctx = ctx
        self.latency_floor_ms = latency_floor_ms

    def ripe(self, routing: Routing, version: int, requests: int) -> bool:
        """Has ``version``, at ``requests`` requests, seen enough to be judged (so the watcher should wake)?"""
        challenger = routing.challenger
        return challenger is not None and version == challenger.version and requests >= self.deploy.min_requests

    def decide(self, routing: Routing) -> Outcome | None:
        """Judge and record the contest of ``routing`` when it is ripe; None when there is nothing to decide."""
        champion, challenger = routing.champion, routing.challenger
        if challenger is None or routing.mode == "direct":
            return None
        figures = self.book.get(challenger.version)
        if figures is None or figures.requests < self.deploy.min_requests:
            return None
        seen = {"champion": self.book.of(champion.version, champion.task).snapshot(), "challenger": figures.snapshot()}
        verdict = judge(
            ContestFigures(
                limits=self.deploy,
                champion=Figures.of(seen["champion"]),
                challenger=Figures.of(seen["challenger"]),
                latency_floor_ms=self.latency_floor_ms,
            )
        )
        done = self.store.change_aliases(
            self.factory_id,
            reason=f"{routing.mode}: {verdict.reason}",
            expect={CHAMPION: champion.version, CHALLENGER: challenger.version},
            move={CHAMPION: challenger.version} if verdict.promote else None,
            delete=(CHALLENGER,),
            kind=EventKind.CHALLENGER_PROMOTED if verdict.promote else EventKind.CHALLENGER_ROLLED_BACK,
            data={
                "by": "server",
                "mode": routing.mode,
                "champion": champion.version,
                "challenger": challenger.version,
                "figures": seen,
                "checks": verdict.checks,
                "limits": self.deploy.model_dump(mode="json"),
                "latency_floor_ms": self.latency_floor_ms,
            },
        )
        if not done:
            log.info("contest of %r not recorded: its aliases moved meanwhile; re-reading them", self.factory)
            return Outcome(None)
        log.info("%r: %s", self.factory, verdict.reason)
        self.ctx.aliases_moved(f"{routing.mode}: {verdict.reason}")
        self.metrics.decisions.labels(self.factory, "promoted" if verdict.promote else "rolled_back").inc()
        return Outcome(challenger if verdict.promote else champion)
