"""Frozen records the store hands out: one per row, times in UTC, JSON columns as plain dicts and lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..patch import CodePatch

TrialState = Literal["queued", "running", "completed", "failed", "pruned", "cancelled"]
CampaignStatus = Literal["running", "finished", "failed", "stopped"]

TRIAL_STATES: tuple[str, ...] = ("queued", "running", "completed", "failed", "pruned", "cancelled")
FINISHED_STATES: tuple[str, ...] = ("completed", "failed", "pruned", "cancelled")
CAMPAIGN_STATUSES: tuple[str, ...] = ("running", "finished", "failed", "stopped")


@dataclass(frozen=True)
class FactoryRecord:
    """One declared factory; ``spec`` is the factory file as a JSON-ready dict."""

    id: int
    name: str
    spec: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class CampaignRecord:
    """One search inside a factory, with its budget and what triggered it."""

    id: int
    factory_id: int
    number: int  # 1, 2, ... within the factory
    status: CampaignStatus
    trigger: str
    seed: int
    budget: dict[str, Any]
    data_fingerprint: str
    elapsed_s: float
    cpu_s: float
    summary: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class TrialRecord:
    """A trial with its proposal and its evaluation flattened in.

    ``value``, ``metrics``, ``reward``, ``feasible`` and ``breakdown`` are None until the trial is
    evaluated. ``intermediate`` maps a step to the score reported at that step.
    """

    id: int
    proposal_id: int
    campaign_id: int
    factory_id: int
    number: int  # 1, 2, ... within the campaign
    state: TrialState
    attempt: int
    worker: str
    seed: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    lease_owner: str
    lease_expires_at: datetime | None
    error: str | None
    failure_kind: str | None
    log_tail: str
    resources: dict[str, Any]
    intermediate: dict[int, float]
    artifact_path: str | None
    # the proposal
    proposer: str
    trainer: str
    params: dict[str, Any]
    reason: str
    key: str
    parents: tuple[int, ...]
    # the evaluation
    value: float | None
    metrics: dict[str, Any] | None
    reward: float | None
    feasible: bool | None
    breakdown: dict[str, Any] | None
    # the proposal's code edit (a script trainer's trial), kept apart from the params
    patch: CodePatch | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass(frozen=True)
class ModelVersionRecord:
    """A registered model: ``version`` counts 1, 2, ... within the factory; ``aliases`` point at it now."""

    id: int
    factory_id: int
    version: int
    artifact_hash: str
    artifact_path: str
    trial_id: int | None
    trainer: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    created_at: datetime
    aliases: tuple[str, ...] = ()

    def _repr_html_(self) -> str:
        from .._html import fields, sealed

        return fields(
            {
                "aliases": ", ".join(self.aliases),
                "trainer": self.trainer,
                "params": self.params,
                "sealed test": sealed(self.metrics),
                "trial": self.trial_id,
                "created": self.created_at,
                "artifact sha256": self.artifact_hash,
            },
            caption=f"model version {self.version}",
        )


@dataclass(frozen=True)
class EventRecord:
    """One entry of the append-only audit log; ``hash`` covers ``prev_hash`` and every other field."""

    id: int
    created_at: datetime
    kind: str
    reason: str
    factory_id: int | None
    campaign_id: int | None
    trial_id: int | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class ChainReport:
    """What :meth:`Store.verify_chain` found; ``first_bad_id`` is the first event that does not verify."""

    ok: bool
    checked: int
    first_bad_id: int | None
    message: str


@dataclass(frozen=True)
class PredictionRecord:
    """One served prediction; ``row`` is its position in the request, ``label`` the true answer once known."""

    id: int
    factory_id: int
    version: int
    request_id: str
    row: int
    created_at: datetime
    features: dict[str, Any]
    output: Any
    label: Any
    labelled_at: datetime | None
