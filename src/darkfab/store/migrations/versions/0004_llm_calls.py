"""LLM calls: one row per request an LLM proposer sent, with its answer, tokens, cost and the proposals it made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-05-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("factory_id", sa.Integer, nullable=False),
        sa.Column("campaign_id", sa.Integer, nullable=True),
        sa.Column("call_id", sa.String(64), nullable=False),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("request", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Float, nullable=False),
        sa.Column("latency_s", sa.Float, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("proposal_keys", sa.JSON(none_as_null=True), nullable=False),
        sa.ForeignKeyConstraint(["factory_id"], ["factories.id"], name="fk_llm_calls_factory"),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], name="fk_llm_calls_campaign"),
        sa.Index("ix_llm_calls_campaign", "campaign_id", "id"),
        sa.Index("ix_llm_calls_factory", "factory_id", "id"),
    )


def downgrade() -> None:
    op.drop_table("llm_calls")
