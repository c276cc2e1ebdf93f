"""What is served, and hot reload: the one :class:`Routing` attribute and every way it changes.

What is served is one immutable :class:`Routing` held in ONE attribute (``Served.routing``). A request reads
that attribute once and uses what it got to the end, so a swap (promote, rollback, a decision, a hot reload)
never mixes two models in one answer and never makes a request wait: a new model is loaded and checked
completely before the attribute is replaced, and requests already running finish on the old one.

Hot reload: the service's watcher thread calls :meth:`Served.sync` every ``poll_interval_s``. When
``champion`` or ``challenger`` points somewhere new (a `darkfab run` in another process, an operator, a
Registry call), the version is loaded fully, then the routing is swapped. A version that fails to load is
logged and skipped until its alias moves again; the old routing keeps serving meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from ._context import ServeContext
from ._deployment import CHALLENGER, CHAMPION, Deployment, load_deployment
from ._router import Routing

log = logging.getLogger("darkfab.serve")


class Served:
    """The routing of one factory's champion (and challenger), its swaps, and the figures they restart."""

    def __init__(self, ctx: ServeContext, champion: Deployment) -> None:
        self.store, self.registry, self.factory, self.factory_id = ctx.store, ctx.registry, ctx.factory, ctx.factory_id
        self.deploy, self.book, self.metrics = ctx.deploy, ctx.book, ctx.metrics
        self._skipped: dict[str, int] = {}  # alias -> version that failed to load (not retried until it moves)
        self.routing = Routing(champion, None, self.deploy.mode, self.deploy.share)
        self.book.restart({champion.version: champion.task})
        self.show(self.routing)

    def _load(self, alias: str, version: int) -> Deployment | None:
        if self._skipped.get(alias) == version:
            return None
        try:
            return load_deployment(self.registry, self.factory, version)
        except Exception as err:  # a damaged artifact must not stop the server: keep serving the old one
            self._skipped[alias] = version
            self.metrics.reload_errors.labels(self.factory).inc()
            log.error("cannot load %s v%s of %r, keeping the current routing: %s", alias, version, self.factory, err)
            return None

    def sync(self) -> None:
        """Serve what the store's aliases name now (a no-op, one small query, when nothing moved)."""
        held = self.store.aliases(self.factory_id)
        routing = self.routing
        want_champion = held.get(CHAMPION, routing.champion.version)  # a deleted champion alias: keep serving
        want_challenger = held.get(CHALLENGER)
        if self.deploy.mode == "direct" or want_challenger == want_champion:
            want_challenger = None
        have_challenger = routing.challenger.version if routing.challenger is not None else None
        if want_champion == routing.champion.version and want_challenger == have_challenger:
            return
        loaded = {routing.champion.version: routing.champion}
        if routing.challenger is not None:
            loaded[routing.challenger.version] = routing.challenger
        champion = loaded.get(want_champion) or self._load(CHAMPION, want_champion)
        if champion is None:
            champion = routing.champion
        challenger = None
        if want_challenger is not None:
            challenger = loaded.get(want_challenger) or self._load(CHALLENGER, want_challenger)
        if champion.version == routing.champion.version and (
            (challenger.version if challenger is not None else None) == have_challenger
        ):
            return
        log.info(
            "routing of %r: champion v%s, challenger %s (aliases moved in the store)",
            self.factory,
            champion.version,
            f"v{challenger.version}" if challenger is not None else "none",
        )
        self.swap(champion, challenger)

    def swap(self, champion: Deployment, challenger: Deployment | None) -> None:
        """Swap what is served (the one write a request can observe); figures restart for the new pair."""
        old = self.routing
        held = self.store.aliases(self.factory_id)
        champion = self._labelled_as(champion, held)
        challenger = self._labelled_as(challenger, held) if challenger is not None else None
        new = Routing(champion, challenger, self.deploy.mode, self.deploy.share)
        self.routing = new
        if new.versions() != old.versions():
            pair = {champion.version: champion.task}
            if challenger is not None:
                pair[challenger.version] = challenger.task
            self.book.restart(pair)
            self._skipped.clear()
        if champion.version != old.champion.version:
            self.metrics.swaps.labels(self.factory).inc()
        self.show(new)

    @staticmethod
    def _labelled_as(dep: Deployment, held: dict[str, int]) -> Deployment:
        """``dep`` with its record's aliases as they are now (its metadata shows them)."""
        aliases = tuple(sorted(a for a, v in held.items() if v == dep.version))
        if dep.record.aliases == aliases:
            return dep
        return replace(dep, record=replace(dep.record, aliases=aliases))

    def show(self, routing: Routing) -> None:
        """Set the gauges of what is served (versions by role, canary share)."""
        self.metrics.served.labels(self.factory, CHAMPION).set(routing.champion.version)
        if routing.challenger is not None:
            self.metrics.served.labels(self.factory, CHALLENGER).set(routing.challenger.version)
        else:
            try:
                self.metrics.served.remove(self.factory, CHALLENGER)
            except KeyError:
                pass
        share = routing.share if routing.challenger is not None and routing.mode == "canary" else 0.0
        self.metrics.share.labels(self.factory).set(share)

    def figures(self) -> dict[str, Any]:
        """The live figures of the versions being routed, by role (recorded with an operator's decision)."""
        routing = self.routing
        snaps = self.book.snapshot()
        out: dict[str, Any] = {CHAMPION: snaps.get(routing.champion.version)}
        if routing.challenger is not None:
            out[CHALLENGER] = snaps.get(routing.challenger.version)
        return out
