"""What a person reads about a factory: its status (campaigns, champion, workers, leaks, wear, pause, approval)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import NotFoundError
from ..events import EventKind
from ..registry import Registry
from ..spec import FactorySpec
from ..store import CampaignRecord, Pauses, Store


@dataclass(frozen=True)
class FactoryStatus:
    name: str
    campaigns: list[dict[str, Any]]
    champion: dict[str, Any] | None
    trials: dict[str, int]
    store: str
    workers: list[dict[str, Any]]  # `darkfab worker` processes seen within a lease
    leaks: list[dict[str, Any]] = field(default_factory=list)  # the latest campaign's leaked columns, decided
    sealed: dict[str, Any] | None = None  # the latest gate's sealed set: sealed_uses of sealed_budget
    paused: dict[str, Any] | None = None  # who paused the factory, when and why (`darkfab pause-factory`)
    pending: dict[str, Any] | None = None  # the gate winner waiting for approval (gate.approval: required)
    task: dict[str, Any] | None = None  # the latest finished campaign's task and why it is that task


def status_of(store: Store, spec: FactorySpec) -> FactoryStatus:
    f = store.get_factory(spec.name)
    campaigns: list[dict[str, Any]] = [
        {
            "number": c.number,
            "status": c.status,
            "trigger": c.trigger,
            "elapsed_s": c.elapsed_s,
            "trials": store.count_trials(c.id),
            "created_at": str(c.created_at),
        }
        for c in store.list_campaigns(f.id)
    ]
    champion = None
    try:
        v = store.get_model_version(f.id, "champion")
        champion = {"version": v.version, "trainer": v.trainer, "params": v.params, "metrics": v.metrics}
    except NotFoundError:
        pass
    totals: dict[str, int] = {}
    for c in campaigns:
        for k, n in c["trials"].items():
            totals[k] = totals.get(k, 0) + n
    workers = [
        {"owner": w.owner, "slots": w.slots, "started_at": str(w.started_at), "seen_at": str(w.seen_at)}
        for w in store.list_workers(spec.name, within_s=spec.execution.lease)
    ]
    last = store.latest_campaign(f.id)
    leaks = [e.data for e in store.list_events(campaign_id=last.id, kinds=(EventKind.LEAKED_FEATURE,))] if last else []
    gates = [
        e.data for e in store.list_events(factory_id=f.id, kinds=(EventKind.GATE_VERDICT,)) if "sealed_uses" in e.data
    ]
    sealed = {k: gates[-1][k] for k in ("sealed_uses", "sealed_budget", "sealed_set")} if gates else None
    held = Pauses(store).state(f.id)
    paused = {"person": held.person, "reason": held.reason, "since": str(held.since)} if held else None
    waiting = Registry(store).pending(spec.name)
    pending = {"version": waiting.version, "trainer": waiting.trainer} if waiting else None
    return FactoryStatus(
        name=spec.name,
        campaigns=campaigns,
        champion=champion,
        trials=totals,
        store=store.url,
        workers=workers,
        leaks=leaks,
        sealed=sealed,
        paused=paused,
        pending=pending,
        task=_task_of(store.list_campaigns(f.id)),
    )


def _task_of(campaigns: list[CampaignRecord]) -> dict[str, Any] | None:
    done = [c.summary for c in campaigns if (c.summary or {}).get("task")]
    return {"task": done[-1]["task"], "reason": done[-1].get("task_reason", "")} if done else None


def target_name(store: Store, factory: str, version: int | str) -> str:
    """The column name the version predicts (the training target's)."""
    rec = store.get_model_version(store.get_factory(factory).id, version)
    return str(rec.lineage.get("target") or "prediction")
