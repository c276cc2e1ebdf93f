"""Operator actions on a served factory: promote, roll back, pause, resume; each recorded with its reason.

Every action holds the service's admin lock (the watcher's hot reload and contest hold it too), re-reads the
store's aliases first, and swaps what is served only after the store recorded the change.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import NotFoundError
from ..events import EventKind
from ._context import ServeContext
from ._deployment import CHALLENGER, CHAMPION, Deployment, load_deployment
from ._errors import Conflict, ModelNotFound
from ._router import Routing
from ._served import Served


class Operator:
    """What the admin API does to one factory's serving, and whether serving is paused (``paused``: the reason)."""

    def __init__(self, ctx: ServeContext, *, served: Served, lock: threading.RLock) -> None:
        self.store, self.registry, self.factory, self.factory_id = ctx.store, ctx.registry, ctx.factory, ctx.factory_id
        self.metrics = ctx.metrics
        self.ctx = ctx
        self.served = served
        self._lock = lock
        self.paused: str | None = self._paused_in_store()
        self.metrics.paused.labels(self.factory).set(1 if self.paused else 0)

    def _paused_in_store(self) -> str | None:
        kinds = (EventKind.SERVING_PAUSED, EventKind.SERVING_RESUMED)
        last = self.store.list_events(factory_id=self.factory_id, kinds=kinds, limit=1)
        return last[0].reason if last and last[0].kind == EventKind.SERVING_PAUSED else None

    def promote(self, ref: int | str, reason: str) -> dict[str, Any]:
        """Load ``ref`` (a version number or an alias such as ``challenger``), point ``champion`` at it, serve it.

        Promoting the challenger being routed (canary, shadow) ends its contest: the ``challenger`` alias is
        deleted in the same transaction. With deploy.mode direct the server leaves ``challenger`` alone.
        """
        with self._lock:
            self.served.sync()
            routing = self.served.routing
            before = routing.champion.version
            try:
                target = self.registry.get(self.factory, ref).version
            except NotFoundError as err:
                raise ModelNotFound(str(err)) from None
            loaded = {d.version: d for d in (routing.champion, routing.challenger) if d is not None}
            try:
                new = loaded.get(target) or load_deployment(self.registry, self.factory, target)
            except NotFoundError as err:
                raise ModelNotFound(str(err)) from None
            held = self.store.aliases(self.factory_id)
            routed = routing.challenger is not None and routing.challenger.version == target
            drop = (CHALLENGER,) if routed and held.get(CHALLENGER) == target else ()
            if held.get(CHAMPION) != target or drop:
                self.store.change_aliases(
                    self.factory_id,
                    reason=f"promoted to v{target} by an operator: {reason}",
                    move={CHAMPION: target},
                    delete=drop,
                    kind=EventKind.CHALLENGER_PROMOTED if drop else None,
                    data={"by": "operator", "champion": before, "challenger": target, "figures": self.served.figures()},
                )
                self.ctx.aliases_moved(f"promoted to v{target} by an operator: {reason}")
            challenger = routing.challenger if routing.challenger is not None and not drop else None
            if challenger is not None and challenger.version == target:
                challenger = None
            self.served.swap(new, challenger)
            return {"model": self.factory, "version": target, "previous": before, "changed": target != before}

    def rollback(self, reason: str) -> dict[str, Any]:
        """Drop the challenger when one is being routed; else point ``champion`` back at the one before."""
        with self._lock:
            self.served.sync()
            routing = self.served.routing
            if routing.challenger is not None:
                return self._drop_challenger(routing, routing.challenger, reason)
            before = routing.champion.version
            target = self.rollback_target()
            new = load_deployment(self.registry, self.factory, target)
            self.registry.set_alias(
                self.factory,
                CHAMPION,
                target,
                reason=f"rolled back from v{before} to v{target} by an operator: {reason}",
            )
            self.ctx.aliases_moved(f"rolled back from v{before} to v{target} by an operator: {reason}")
            self.served.swap(new, None)
            return {"model": self.factory, "version": target, "previous": before, "changed": True}

    def _drop_challenger(self, routing: Routing, challenger: Deployment, reason: str) -> dict[str, Any]:
        dropped = challenger.version
        self.store.change_aliases(
            self.factory_id,
            reason=f"challenger v{dropped} dropped by an operator: {reason}",
            delete=(CHALLENGER,),
            kind=EventKind.CHALLENGER_ROLLED_BACK,
            data={
                "by": "operator",
                "mode": routing.mode,
                "champion": routing.champion.version,
                "challenger": dropped,
                "figures": self.served.figures(),
            },
        )
        self.ctx.aliases_moved(f"challenger v{dropped} dropped by an operator: {reason}")
        self.served.swap(routing.champion, None)
        version = routing.champion.version
        return {"model": self.factory, "version": version, "previous": version, "changed": True, "dropped": dropped}

    def rollback_target(self) -> int:
        """The champion before the current one.

        The ``alias_set`` events of ``champion`` are replayed as a stack: a move to a new version pushes it,
        a move back to the version under the top pops the top (that is what a rollback is). When the log
        has no earlier champion, the current version's lineage parents are used.
        """
        stack: list[int] = []
        for e in self.store.list_events(factory_id=self.factory_id, kinds=(EventKind.ALIAS_SET,)):
            if e.data.get("alias") != CHAMPION:
                continue
            version, previous = e.data.get("version"), e.data.get("previous")
            if not isinstance(version, int):  # Store._move_alias always records the int version it set
                continue
            if not stack and isinstance(previous, int):
                stack.append(previous)
            if len(stack) >= 2 and stack[-2] == version:
                stack.pop()
            elif not stack or stack[-1] != version:
                stack.append(version)
        current = self.served.routing.champion
        if stack and stack[-1] == current.version and len(stack) >= 2:
            return stack[-2]
        parents = current.record.lineage.get("parents") or []
        for p in reversed(parents if isinstance(parents, list) else [parents]):
            if isinstance(p, int) and not isinstance(p, bool) and p != current.version:
                return p
        raise Conflict(
            f"{self.factory!r} v{current.version} has no earlier champion to roll back to (no earlier champion in "
            "the event log, no lineage parent); fix: promote a version by number"
        )

    def pause(self, reason: str) -> dict[str, Any]:
        return self._set_paused(reason, paused=True)

    def resume(self, reason: str) -> dict[str, Any]:
        return self._set_paused(reason, paused=False)

    def _set_paused(self, reason: str, *, paused: bool) -> dict[str, Any]:
        with self._lock:
            self.store.append_event(
                kind=EventKind.SERVING_PAUSED if paused else EventKind.SERVING_RESUMED,
                reason=reason,
                factory_id=self.factory_id,
                data={"version": self.served.routing.champion.version},
            )
            self.paused = reason if paused else None
            self.metrics.paused.labels(self.factory).set(1 if paused else 0)
            return {"model": self.factory, "paused": paused, "reason": reason}
