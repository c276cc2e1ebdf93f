"""Monitor windows: one row per closed window of live traffic, with its drift tests and live quality.

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-11
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("factory_id", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("first_prediction_id", sa.Integer, nullable=False),
        sa.Column("last_prediction_id", sa.Integer, nullable=False),
        sa.Column("drift", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("share_drifted", sa.Float, nullable=False),
        sa.Column("dataset_drift", sa.Boolean, nullable=False),
        sa.Column("prediction_drift", sa.Boolean, nullable=False),
        sa.Column("quality", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("triggered", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.ForeignKeyConstraint(["factory_id"], ["factories.id"], name="fk_monitor_windows_factory"),
        sa.UniqueConstraint("factory_id", "number", name="uq_monitor_windows_factory_number"),
        sa.UniqueConstraint("factory_id", "last_prediction_id", name="uq_monitor_windows_factory_last"),
    )


def downgrade() -> None:
    op.drop_table("monitor_windows")
