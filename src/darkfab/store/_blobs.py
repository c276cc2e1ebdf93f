"""Artifacts kept in the database, for stores that several machines share.

On PostgreSQL each artifact written to the local folder is also written here (once per sha256), and a
process that lacks a file reads it from here and caches it, so workers on other machines need no shared
folder. ``DARKFAB_ARTIFACTS_IN_STORE=0`` turns this off (when ``DARKFAB_ARTIFACTS`` is a shared folder
already); SQLite stores, which one machine uses, never keep artifacts in the database.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

from ..errors import StoreError
from ._base import Repository
from ._schema import artifact_blobs

ENV_IN_STORE = "DARKFAB_ARTIFACTS_IN_STORE"


class Blobs(Repository):
    """The ``artifact_blobs`` table: artifact bytes by sha256, written once."""

    @property
    def keeps_artifacts(self) -> bool:
        """Whether artifacts are kept in this database too (a shared, non-SQLite store, unless turned off)."""
        return not self._base._sqlite and os.environ.get(ENV_IN_STORE, "1").strip().lower() not in ("0", "false", "no")

    def put_artifact_blob(self, digest: str, data: bytes) -> None:
        """Keep ``data`` under its sha256 ``digest`` (the caller hashed it); a second put of it is a no-op."""
        exists = sa.select(artifact_blobs.c.sha256).where(artifact_blobs.c.sha256 == digest)
        with self._base._read(f"look up artifact {digest[:12]}") as conn:
            if conn.execute(exists).first() is not None:
                return
        row = {"sha256": digest, "size": len(data), "data": bytes(data), "created_at": self._base.clock()}
        try:
            with self._base._write(f"keep artifact {digest[:12]}", chain=False) as conn:
                conn.execute(artifact_blobs.insert().values(**row))
        except StoreError:  # another process kept the same bytes an instant before: fine, else re-raise
            with self._base._read(f"look up artifact {digest[:12]}") as conn:
                if conn.execute(exists).first() is None:
                    raise

    def get_artifact_blob(self, digest: str) -> bytes | None:
        """The kept bytes of ``digest`` (unverified: the artifact store checks the hash), or None."""
        query = sa.select(artifact_blobs.c.data).where(artifact_blobs.c.sha256 == digest)
        with self._base._read(f"read artifact {digest[:12]}") as conn:
            row = conn.execute(query).first()
        return None if row is None else bytes(row[0])
