"""The statements the store runs, built once at import, and row-to-record conversion.

Statements take their values as bound parameters (``b_*`` for the WHERE clause) rather than being built
per call: SQLAlchemy then reuses the compiled form, which keeps a store call well under a millisecond.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from ._records import CampaignRecord, EventRecord, FactoryRecord, ModelVersionRecord, TrialRecord
from ._schema import campaigns, evaluations, events, factories, model_versions, proposals, trials

TRIAL_SELECT = sa.select(
    trials,
    campaigns.c.factory_id,
    proposals.c.proposer,
    proposals.c.trainer,
    proposals.c.params,
    proposals.c.reason,
    proposals.c.key.label("proposal_key"),
    proposals.c.parents,
    evaluations.c.value,
    evaluations.c.metrics,
    evaluations.c.reward,
    evaluations.c.feasible,
    evaluations.c.breakdown,
).select_from(
    trials.join(proposals, proposals.c.id == trials.c.proposal_id)
    .join(campaigns, campaigns.c.id == trials.c.campaign_id)
    .outerjoin(evaluations, evaluations.c.trial_id == trials.c.id)
)


def intermediate_out(raw: dict[str, Any] | None) -> dict[int, float]:
    """JSON keys are strings; steps are integers again on the way out."""
    out: dict[Any, Any] = {}
    for k, v in (raw or {}).items():
        try:
            out[int(k)] = v
        except (TypeError, ValueError):
            out[k] = v
    return out


def factory_record(row: Row[Any]) -> FactoryRecord:
    return FactoryRecord(id=row.id, name=row.name, spec=row.spec, created_at=row.created_at)


def campaign_record(row: Row[Any]) -> CampaignRecord:
    return CampaignRecord(
        id=row.id,
        factory_id=row.factory_id,
        number=row.number,
        status=row.status,
        trigger=row.trigger,
        seed=row.seed,
        budget=row.budget,
        data_fingerprint=row.data_fingerprint,
        elapsed_s=row.elapsed_s,
        cpu_s=row.cpu_s,
        summary=row.summary,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def trial_record(row: Row[Any]) -> TrialRecord:
    return TrialRecord(
        id=row.id,
        proposal_id=row.proposal_id,
        campaign_id=row.campaign_id,
        factory_id=row.factory_id,
        number=row.number,
        state=row.state,
        attempt=row.attempt,
        worker=row.worker,
        seed=row.seed,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        error=row.error,
        failure_kind=row.failure_kind,
        log_tail=row.log_tail,
        resources=row.resources,
        intermediate=intermediate_out(row.intermediate),
        artifact_path=row.artifact_path,
        proposer=row.proposer,
        trainer=row.trainer,
        params=row.params,
        reason=row.reason,
        key=row.proposal_key,
        parents=tuple(row.parents),
        value=row.value,
        metrics=row.metrics,
        reward=row.reward,
        feasible=row.feasible,
        breakdown=row.breakdown,
    )


def model_version_record(row: Row[Any], aliases: tuple[str, ...] = ()) -> ModelVersionRecord:
    return ModelVersionRecord(
        id=row.id,
        factory_id=row.factory_id,
        version=row.version,
        artifact_hash=row.artifact_hash,
        artifact_path=row.artifact_path,
        trial_id=row.trial_id,
        trainer=row.trainer,
        params=row.params,
        metrics=row.metrics,
        lineage=row.lineage,
        created_at=row.created_at,
        aliases=aliases,
    )


def event_record(row: Row[Any]) -> EventRecord:
    return EventRecord(
        id=row.id,
        created_at=row.created_at,
        kind=row.kind,
        reason=row.reason,
        factory_id=row.factory_id,
        campaign_id=row.campaign_id,
        trial_id=row.trial_id,
        data=row.data,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


B = sa.bindparam

FACTORY_SELECT = sa.select(factories)
CAMPAIGN_SELECT = sa.select(campaigns)
MODEL_VERSION_SELECT = sa.select(model_versions)
EVENT_SELECT = sa.select(events)

LAST_EVENT = EVENT_SELECT.order_by(events.c.id.desc()).limit(1)
LAST_EVENT_HASH = sa.select(events.c.hash).order_by(events.c.id.desc()).limit(1)
# the chain head read in the same SELECT as the row a change starts from: one round trip fewer per call
CHAIN_HEAD = LAST_EVENT_HASH.scalar_subquery().label("chain_head")
INSERT_EVENT = events.insert()

FACTORY_NAME = sa.select(factories.c.name).where(factories.c.id == B("b_factory_id"))
FACTORY_BY_NAME = FACTORY_SELECT.where(factories.c.name == B("b_name"))

CAMPAIGN_BY_ID = CAMPAIGN_SELECT.where(campaigns.c.id == B("b_campaign_id"))
UPDATE_CAMPAIGN = campaigns.update().where(campaigns.c.id == B("b_campaign_id"))

CAMPAIGN_FOR_TRIAL = sa.select(
    campaigns.c.factory_id,
    campaigns.c.number,
    campaigns.c.status,
    sa.select(sa.func.coalesce(sa.func.max(trials.c.number), 0) + 1)
    .where(trials.c.campaign_id == campaigns.c.id)
    .scalar_subquery()
    .label("next_number"),
    CHAIN_HEAD,
).where(campaigns.c.id == B("b_campaign_id"))
INSERT_PROPOSAL = proposals.insert()
INSERT_TRIAL = trials.insert()
INSERT_EVALUATION = evaluations.insert()
UPDATE_TRIAL = trials.update().where(trials.c.id == B("b_trial_id"))
TRIAL_BY_ID = TRIAL_SELECT.where(trials.c.id == B("b_trial_id"))
TRIAL_STATE = (
    sa.select(
        trials.c.number,
        trials.c.state,
        trials.c.attempt,
        trials.c.campaign_id,
        trials.c.lease_owner,
        trials.c.lease_expires_at,
        trials.c.finished_at,
        trials.c.worker,
        campaigns.c.factory_id,
        CHAIN_HEAD,
    )
    .select_from(trials.join(campaigns, campaigns.c.id == trials.c.campaign_id))
    .where(trials.c.id == B("b_trial_id"))
)
HEARTBEAT = (
    trials.update()
    .where(trials.c.id.in_(B("b_trial_ids", expanding=True)), trials.c.state == "running")
    .values(heartbeat_at=B("b_now"), lease_expires_at=B("b_expires"))
)

NEXT_VERSION = sa.select(sa.func.coalesce(sa.func.max(model_versions.c.version), 0) + 1).where(
    model_versions.c.factory_id == B("b_factory_id")
)
INSERT_MODEL_VERSION = model_versions.insert()
