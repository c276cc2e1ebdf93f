"""The statements the store runs, built once at import, and row-to-record conversion.

Statements take their values as bound parameters (``b_*`` for the WHERE clause) rather than being built
per call: SQLAlchemy then reuses the compiled form, which keeps a store call well under a millisecond.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Row

from ..patch import CodePatch
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
    proposals.c.patch.label("patch_edits"),
    proposals.c.diff.label("patch_diff"),
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
    return FactoryRecord(**row._mapping)


def campaign_record(row: Row[Any]) -> CampaignRecord:
    return CampaignRecord(**row._mapping)


def trial_record(row: Row[Any]) -> TrialRecord:
    """A row of :data:`TRIAL_SELECT` (the trial, its proposal and its evaluation) as one record."""
    values = dict(row._mapping)
    values["key"] = values.pop("proposal_key")
    values["intermediate"] = intermediate_out(values["intermediate"])
    values["parents"] = tuple(values["parents"])
    values["patch"] = CodePatch.of(values.pop("patch_edits"), values.pop("patch_diff"))
    return TrialRecord(**values)


def model_version_record(row: Row[Any], aliases: tuple[str, ...] = ()) -> ModelVersionRecord:
    return ModelVersionRecord(**row._mapping, aliases=aliases)


def event_record(row: Row[Any]) -> EventRecord:
    return EventRecord(**row._mapping)


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
