"""Preferences: which of two trials a person or an AI judge prefers, and why (the learned reward's data).

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "preferences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "factory_id", sa.Integer, sa.ForeignKey("factories.id", name="fk_preferences_factory"), nullable=False
        ),
        sa.Column("trial_a", sa.Integer, sa.ForeignKey("trials.id", name="fk_preferences_trial_a"), nullable=False),
        sa.Column("trial_b", sa.Integer, sa.ForeignKey("trials.id", name="fk_preferences_trial_b"), nullable=False),
        sa.Column("winner", sa.String(8), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_preferences_factory", "factory_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("preferences")
