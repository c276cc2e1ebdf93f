"""Workers: the roster of `darkfab worker` processes, so the coordinator queues work for them.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("owner", sa.String(300), primary_key=True),
        sa.Column("factory", sa.String(200), nullable=False),
        sa.Column("slots", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Index("ix_workers_factory_seen", "factory", "seen_at"),
    )


def downgrade() -> None:
    op.drop_table("workers")
