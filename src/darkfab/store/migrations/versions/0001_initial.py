"""The first schema: factories, campaigns, proposals, trials, evaluations, model versions, aliases, events.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str) -> sa.Column:
    return sa.Column(name, sa.JSON(none_as_null=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "factories",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        _json("spec"),
        _ts("created_at"),
        sa.UniqueConstraint("name", name="uq_factories_name"),
    )
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("factory_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        _json("budget"),
        sa.Column("data_fingerprint", sa.String(200), nullable=False),
        sa.Column("elapsed_s", sa.Float, nullable=False),
        sa.Column("cpu_s", sa.Float, nullable=False),
        _json("summary"),
        _ts("created_at"),
        _ts("finished_at", nullable=True),
        sa.ForeignKeyConstraint(["factory_id"], ["factories.id"], name="fk_campaigns_factory"),
        sa.UniqueConstraint("factory_id", "number", name="uq_campaigns_factory_number"),
    )
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("trainer", sa.String(200), nullable=False),
        _json("params"),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        _json("parents"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_proposals_campaign"),
    )
    op.create_index("ix_proposals_campaign", "proposals", ["campaign_id"])
    op.create_table(
        "trials",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("proposal_id", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("seed", sa.BigInteger, nullable=False),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("heartbeat_at", nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=False),
        _ts("lease_expires_at", nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("failure_kind", sa.String(40), nullable=True),
        sa.Column("log_tail", sa.Text, nullable=False),
        _json("resources"),
        _json("intermediate"),
        sa.Column("artifact_path", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(["proposal_id"], ["proposals.id"], name="fk_trials_proposal"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_trials_campaign"),
        sa.UniqueConstraint("campaign_id", "number", name="uq_trials_campaign_number"),
    )
    op.create_index("ix_trials_campaign_state", "trials", ["campaign_id", "state"])
    op.create_index("ix_trials_proposal", "trials", ["proposal_id"])
    op.create_table(
        "evaluations",
        sa.Column("trial_id", sa.Integer, primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
        _json("metrics"),
        sa.Column("reward", sa.Float, nullable=True),
        sa.Column("feasible", sa.Boolean, nullable=True),
        _json("breakdown"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_evaluations_trial"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("factory_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("artifact_hash", sa.String(64), nullable=False),
        sa.Column("artifact_path", sa.Text, nullable=False),
        sa.Column("trial_id", sa.Integer, nullable=True),
        sa.Column("trainer", sa.String(200), nullable=False),
        _json("params"),
        _json("metrics"),
        _json("lineage"),
        _ts("created_at"),
        sa.ForeignKeyConstraint(["factory_id"], ["factories.id"], name="fk_model_versions_factory"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_model_versions_trial"),
        sa.UniqueConstraint("factory_id", "version", name="uq_model_versions_factory_version"),
    )
    op.create_index("ix_model_versions_artifact_hash", "model_versions", ["artifact_hash"])
    op.create_table(
        "aliases",
        sa.Column("factory_id", sa.Integer, primary_key=True),
        sa.Column("alias", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.ForeignKeyConstraint(
            ["factory_id", "version"],
            ["model_versions.factory_id", "model_versions.version"],
            name="fk_aliases_model_version",
        ),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        _ts("created_at"),
        sa.Column("kind", sa.String(60), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("factory_id", sa.Integer, nullable=True),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("trial_id", sa.Integer, nullable=True),
        _json("data"),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("prev_hash", name="uq_events_prev_hash"),
    )
    op.create_index("ix_events_factory", "events", ["factory_id", "id"])
    op.create_index("ix_events_campaign", "events", ["campaign_id", "id"])
    op.create_index("ix_events_trial", "events", ["trial_id"])
    op.create_index("ix_events_kind", "events", ["kind"])


def downgrade() -> None:
    for table in (
        "events",
        "aliases",
        "model_versions",
        "evaluations",
        "trials",
        "proposals",
        "campaigns",
        "factories",
    ):
        op.drop_table(table)
