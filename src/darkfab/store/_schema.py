"""Every table of the store, as SQLAlchemy Core objects, on one ``metadata``.

Alembic migrations create them; the repositories only query them. Every table is declared here (none
elsewhere), so Alembic's ``env.py`` and the test that compares this metadata with the migrated database
see all of them by importing this one module.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

UTC = timezone.utc


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that goes in and comes out as a timezone-aware UTC datetime on every backend.

    SQLite has no time zones, so the value is stored there as naive UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"a store timestamp must be a timezone-aware datetime, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    # SQL NULL for None, so "no metrics" and "metrics = null" are not two different things
    return sa.JSON(none_as_null=True)


metadata = sa.MetaData()

factories = sa.Table(
    "factories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("spec", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("name", name="uq_factories_name"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_campaigns_factory"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("trigger", sa.String(200), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("budget", _json(), nullable=False),
    sa.Column("data_fingerprint", sa.String(200), nullable=False),
    sa.Column("elapsed_s", sa.Float, nullable=False),
    sa.Column("cpu_s", sa.Float, nullable=False),
    sa.Column("summary", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("factory_id", "number", name="uq_campaigns_factory_number"),
)

proposals = sa.Table(
    "proposals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", name="fk_proposals_campaign"), nullable=False),
    sa.Column("proposer", sa.String(200), nullable=False),
    sa.Column("trainer", sa.String(200), nullable=False),
    sa.Column("params", _json(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("key", sa.String(200), nullable=False),
    sa.Column("parents", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    # a code-edit proposal's change to its script (darkfab.patch.CodePatch); both NULL when it edits no code
    sa.Column("patch", _json(), nullable=True),
    sa.Column("diff", sa.Text, nullable=True),
    sa.Index("ix_proposals_campaign", "campaign_id"),
)

trials = sa.Table(
    "trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("proposal_id", sa.Integer, sa.ForeignKey("proposals.id", name="fk_trials_proposal"), nullable=False),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", name="fk_trials_campaign"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(200), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=True),
    sa.Column("lease_owner", sa.String(200), nullable=False),
    sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("failure_kind", sa.String(40), nullable=True),
    sa.Column("log_tail", sa.Text, nullable=False),
    sa.Column("resources", _json(), nullable=False),
    sa.Column("intermediate", _json(), nullable=False),
    sa.Column("artifact_path", sa.Text, nullable=True),
    sa.UniqueConstraint("campaign_id", "number", name="uq_trials_campaign_number"),
    sa.Index("ix_trials_campaign_state", "campaign_id", "state"),
    sa.Index("ix_trials_proposal", "proposal_id"),
)

evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", name="fk_evaluations_trial"), primary_key=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("metrics", _json(), nullable=False),
    sa.Column("reward", sa.Float, nullable=True),
    sa.Column("feasible", sa.Boolean, nullable=True),
    sa.Column("breakdown", _json(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_model_versions_factory"), nullable=False
    ),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("artifact_hash", sa.String(64), nullable=False),
    sa.Column("artifact_path", sa.Text, nullable=False),
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("trials.id", name="fk_model_versions_trial"), nullable=True),
    sa.Column("trainer", sa.String(200), nullable=False),
    sa.Column("params", _json(), nullable=False),
    sa.Column("metrics", _json(), nullable=False),
    sa.Column("lineage", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.UniqueConstraint("factory_id", "version", name="uq_model_versions_factory_version"),
    sa.Index("ix_model_versions_artifact_hash", "artifact_hash"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("factory_id", sa.Integer, primary_key=True),
    sa.Column("alias", sa.String(100), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(
        ["factory_id", "version"],
        ["model_versions.factory_id", "model_versions.version"],
        name="fk_aliases_model_version",
    ),
)

# No foreign keys on events: the audit log outlives the rows it talks about.
events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(60), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("factory_id", sa.Integer, nullable=True),
    sa.Column("campaign_id", sa.Integer, nullable=True),
    sa.Column("trial_id", sa.Integer, nullable=True),
    sa.Column("data", _json(), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # two events can never claim the same predecessor: the chain cannot fork, whatever the backend
    sa.UniqueConstraint("prev_hash", name="uq_events_prev_hash"),
    sa.Index("ix_events_factory", "factory_id", "id"),
    sa.Index("ix_events_campaign", "campaign_id", "id"),
    sa.Index("ix_events_trial", "trial_id"),
    sa.Index("ix_events_kind", "kind"),
)

# One row per served prediction; no audit event each (the volume would drown the log). ``row`` is the
# position of the prediction in its request, so a batch shares one request id and keeps its rows apart.
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_predictions_factory"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("row", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("features", _json(), nullable=False),
    sa.Column("output", _json(), nullable=False),
    sa.Column("label", _json(), nullable=True),
    sa.Column("labelled_at", UTCDateTime(), nullable=True),
    sa.Index("ix_predictions_factory_request", "factory_id", "request_id"),
    sa.Index("ix_predictions_factory_created", "factory_id", "created_at"),
)

# One row per closed monitor window (``_monitoring``); a window and its events are written together.
monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_monitor_windows_factory"), nullable=False
    ),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("first_prediction_id", sa.Integer, nullable=False),
    sa.Column("last_prediction_id", sa.Integer, nullable=False),
    sa.Column("drift", _json(), nullable=False),
    sa.Column("share_drifted", sa.Float, nullable=False),
    sa.Column("dataset_drift", sa.Boolean, nullable=False),
    sa.Column("prediction_drift", sa.Boolean, nullable=False),
    sa.Column("quality", _json(), nullable=False),
    sa.Column("triggered", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.UniqueConstraint("factory_id", "number", name="uq_monitor_windows_factory_number"),
    sa.UniqueConstraint("factory_id", "last_prediction_id", name="uq_monitor_windows_factory_last"),
)

# Every request an LLM proposer sent (``_llm_calls``): data, not decisions, so no event per row.
llm_calls = sa.Table(
    "llm_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_llm_calls_factory"), nullable=False),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id", name="fk_llm_calls_campaign"), nullable=True),
    sa.Column("call_id", sa.String(64), nullable=False),
    sa.Column("proposer", sa.String(200), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("request", _json(), nullable=False),
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("prompt_tokens", sa.Integer, nullable=False),
    sa.Column("completion_tokens", sa.Integer, nullable=False),
    sa.Column("cost", sa.Float, nullable=False),
    sa.Column("latency_s", sa.Float, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("proposal_keys", _json(), nullable=False),
    sa.Index("ix_llm_calls_campaign", "campaign_id", "id"),
    sa.Index("ix_llm_calls_factory", "factory_id", "id"),
)

# The roster of `darkfab worker` processes (``_workers``); presence is data, not a decision.
workers = sa.Table(
    "workers",
    metadata,
    sa.Column("owner", sa.String(300), primary_key=True),
    sa.Column("factory", sa.String(200), nullable=False),
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("seen_at", UTCDateTime(), nullable=False),
    sa.Index("ix_workers_factory_seen", "factory", "seen_at"),
)

# Artifacts kept in the database for stores several machines share (``_blobs``), once per sha256.
artifact_blobs = sa.Table(
    "artifact_blobs",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

# Which of two trials is the better model, by a person or a judge (``_preferences``).
preferences = sa.Table(
    "preferences",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_preferences_factory"), nullable=False),
    sa.Column("trial_a", sa.Integer, sa.ForeignKey("trials.id", name="fk_preferences_trial_a"), nullable=False),
    sa.Column("trial_b", sa.Integer, sa.ForeignKey("trials.id", name="fk_preferences_trial_b"), nullable=False),
    sa.Column("winner", sa.String(8), nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_preferences_factory", "factory_id", "id"),
)
