"""Proposal patch: a code-edit proposal's change gets its own columns instead of ``params["_patch"]`` / ``["_diff"]``.

Existing rows are moved: a proposal's ``_patch`` and ``_diff`` go to ``proposals.patch`` and ``proposals.diff``
and leave its params; a model version registered from such a trial keeps them as ``lineage["patch"]``
(``{"edits": [...], "diff": "..."}``), out of its params and of ``lineage["params"]``. The audit log is not
touched: its ``proposed`` events keep the params as they were written, as the hash chain requires. The
downgrade puts everything back.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_KEYS = ("_patch", "_diff")
_JSON = sa.JSON(none_as_null=True)
_proposals = sa.table(
    "proposals", sa.column("id", sa.Integer), sa.column("params", _JSON), sa.column("patch", _JSON), sa.column("diff")
)
_versions = sa.table(
    "model_versions", sa.column("id", sa.Integer), sa.column("params", _JSON), sa.column("lineage", _JSON)
)


def _without(params: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(params or {}).items() if k not in _KEYS}


def _edits(params: dict[str, Any]) -> list[Any]:
    return list(params.get("_patch") or [])


def upgrade() -> None:
    op.add_column("proposals", sa.Column("patch", _JSON, nullable=True))
    op.add_column("proposals", sa.Column("diff", sa.Text, nullable=True))
    conn = op.get_bind()
    for row in conn.execute(sa.select(_proposals.c.id, _proposals.c.params)).all():
        params = dict(row.params or {})
        if any(k in params for k in _KEYS):
            conn.execute(
                _proposals.update()
                .where(_proposals.c.id == row.id)
                .values(params=_without(params), patch=_edits(params), diff=str(params.get("_diff") or ""))
            )
    for version in conn.execute(sa.select(_versions.c.id, _versions.c.params, _versions.c.lineage)).all():
        params = dict(version.params or {})
        if any(k in params for k in _KEYS):
            lineage = dict(version.lineage or {})
            lineage["patch"] = {"edits": _edits(params), "diff": str(params.get("_diff") or "")}
            if isinstance(lineage.get("params"), dict):
                lineage["params"] = _without(lineage["params"])
            conn.execute(
                _versions.update().where(_versions.c.id == version.id).values(params=_without(params), lineage=lineage)
            )


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_proposals.c.id, _proposals.c.params, _proposals.c.patch, _proposals.c.diff))
    for row in rows.all():
        if row.patch is not None or row.diff is not None:
            params = {**dict(row.params or {}), "_patch": list(row.patch or []), "_diff": row.diff or ""}
            conn.execute(_proposals.update().where(_proposals.c.id == row.id).values(params=params))
    for version in conn.execute(sa.select(_versions.c.id, _versions.c.params, _versions.c.lineage)).all():
        lineage = dict(version.lineage or {})
        patch = lineage.pop("patch", None)
        if isinstance(patch, dict):
            code = {"_patch": list(patch.get("edits") or []), "_diff": str(patch.get("diff") or "")}
            if isinstance(lineage.get("params"), dict):
                lineage["params"] = {**lineage["params"], **code}
            params = {**dict(version.params or {}), **code}
            conn.execute(_versions.update().where(_versions.c.id == version.id).values(params=params, lineage=lineage))
    op.drop_column("proposals", "diff")
    op.drop_column("proposals", "patch")
