"""Several worker processes sharing one campaign: claim queued trials under a lease, reclaim silent ones."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import StoreError, StoreUnavailable
from ._base import Repository, StoreBase
from ._records import TrialRecord
from ._schema import trials
from ._trials import Trials


class Leases(Repository):
    """Claims go through :meth:`Trials.start_trial`, whose write lock makes each claim exclusive."""

    def __init__(self, base: StoreBase, trial_repo: Trials) -> None:
        super().__init__(base)
        self._trials = trial_repo

    def claim_trial(self, campaign_id: int, *, worker: str, lease_s: float) -> TrialRecord | None:
        """Lease the oldest queued trial of a campaign to ``worker``; None when none is queued."""
        query = (
            sa.select(trials.c.id)
            .where(trials.c.campaign_id == campaign_id, trials.c.state == "queued")
            .order_by(trials.c.id)
            .limit(8)
        )
        with self._base._read(f"list queued trials of campaign {campaign_id}") as conn:
            ids = [r[0] for r in conn.execute(query)]
        for trial_id in ids:
            try:
                self._trials.start_trial(trial_id, worker=worker, lease_owner=worker, lease_s=lease_s)
            except StoreUnavailable:  # an outage (a cut is run again from the claim's start): not a lost race
                raise
            except StoreError:  # another worker claimed it first
                continue
            # its own unit: a cut here must not run the claim again, which would lease a second trial
            record = self._base._outages.unit(self._trials.get_trial)(trial_id)
            if record.lease_owner == worker:
                return record
        return None

    def reclaim_expired(self, campaign_id: int, *, reason: str) -> list[int]:
        """Running trials whose lease ran out (their worker went silent) go back to the queue."""
        now = self._base.clock()
        query = sa.select(trials.c.id).where(
            trials.c.campaign_id == campaign_id,
            trials.c.state == "running",
            trials.c.lease_expires_at.is_not(None),
            trials.c.lease_expires_at < now,
        )
        with self._base._read(f"find expired leases of campaign {campaign_id}") as conn:
            expired = [r[0] for r in conn.execute(query)]
        if not expired:
            return []
        requeued = self._trials.requeue_interrupted(campaign_id, reason=reason, only=tuple(expired), expired_only=True)
        return [t.id for t in requeued]
