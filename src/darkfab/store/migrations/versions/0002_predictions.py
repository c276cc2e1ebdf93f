"""The prediction log: one row per served prediction, with the true label once feedback arrives.

Revision ID: 0002
Revises: 0001
Create Date: 2026-05-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("factory_id", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("output", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("label", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["factory_id"], ["factories.id"], name="fk_predictions_factory"),
    )
    op.create_index("ix_predictions_factory_request", "predictions", ["factory_id", "request_id"])
    op.create_index("ix_predictions_factory_created", "predictions", ["factory_id", "created_at"])


def downgrade() -> None:
    op.drop_table("predictions")
