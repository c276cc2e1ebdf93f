"""The store: factories, campaigns, proposals, trials, evaluations, model versions and the audit log.

SQLAlchemy Core over SQLite (the default, WAL) or PostgreSQL (psycopg 3), every table in one ``metadata``
(:data:`metadata`), schema kept by Alembic migrations that run when a store is opened. Each change is one transaction that appends a hash-chained
event, so the log of decisions cannot be edited without :meth:`Store.verify_chain` noticing.
"""

from __future__ import annotations

from ._base import REQUEST_WAIT_S, RETRY_AFTER_S, Clock, utc_now
from ._console_reads import TRIAL_SORTS, ProposerCounts, TrialPoint, proposer_counts, trial_page, trial_points
from ._llm_calls import LLM_CALL_STATUSES, LLMCallRecord
from ._migrate import alembic_config, current_revision, head_revision, upgrade
from ._monitoring import MonitorWindowRecord
from ._pauses import PauseRecord, Pauses, checked_text
from ._predictions import FeedbackResult
from ._preferences import PREFERENCE_WINNERS, PreferenceRecord
from ._records import (
    CAMPAIGN_STATUSES,
    FINISHED_STATES,
    TRIAL_STATES,
    CampaignRecord,
    CampaignStatus,
    ChainReport,
    EventRecord,
    FactoryRecord,
    ModelVersionRecord,
    PredictionRecord,
    TrialRecord,
    TrialState,
)
from ._refs import is_factory_file, resolve_factory, stored_spec
from ._schema import metadata
from ._store import Store
from ._url import resolve_store_url
from ._workers import WorkerRecord

__all__ = [
    "CAMPAIGN_STATUSES",
    "FINISHED_STATES",
    "LLM_CALL_STATUSES",
    "PREFERENCE_WINNERS",
    "REQUEST_WAIT_S",
    "RETRY_AFTER_S",
    "TRIAL_SORTS",
    "TRIAL_STATES",
    "CampaignRecord",
    "CampaignStatus",
    "ChainReport",
    "Clock",
    "EventRecord",
    "FactoryRecord",
    "FeedbackResult",
    "LLMCallRecord",
    "ModelVersionRecord",
    "MonitorWindowRecord",
    "PauseRecord",
    "Pauses",
    "PredictionRecord",
    "PreferenceRecord",
    "ProposerCounts",
    "Store",
    "TrialPoint",
    "TrialRecord",
    "TrialState",
    "WorkerRecord",
    "alembic_config",
    "checked_text",
    "current_revision",
    "head_revision",
    "is_factory_file",
    "metadata",
    "proposer_counts",
    "resolve_factory",
    "resolve_store_url",
    "stored_spec",
    "trial_page",
    "trial_points",
    "upgrade",
    "utc_now",
]
