"""A `darkfab worker`'s loop over one campaign: claim its queued trials under leases, run and record them."""

from __future__ import annotations

import time
from collections.abc import Callable

from ._trials import TrialLoop


class WorkerLoop(TrialLoop):
    """Runs the trials the coordinator queued; proposes nothing, prunes nothing, keeps no ensemble pool."""

    def work(self, *, stop_when: Callable[[], bool]) -> int:
        """Claim and run this campaign's queued trials until ``stop_when`` says it is over; how many finished."""
        t0 = time.monotonic()
        done = 0
        while True:
            if not self._is_paused():  # paused: finish the trials in flight, claim no new one
                self._claim(self.executor.capacity - self.executor.in_flight)
            done += self._poll(0.2, t0)
            self._housekeeping(time.monotonic())
            if not self.running and stop_when():
                return done

    def _housekeep_role(self) -> None:
        """Say this worker is alive; stop trials the coordinator cancelled or another worker took over."""
        self.store.announce_worker(self.spec.name, owner=self.owner, slots=self.executor.capacity)
        self._drop_lost_leases()

    def _drop_lost_leases(self) -> None:
        if not self.running:
            return
        ids = {r.record.id: job for job, r in self.running.items()}
        for t in self.store.list_trials(campaign_id=self.campaign.id):
            if t.id in ids and (t.state != "running" or t.lease_owner != self.owner):
                # cancelled by the coordinator, or reclaimed by another worker: stop working on it
                self.executor.cancel(ids[t.id], f"trial {t.id} is {t.state} under {t.lease_owner or 'nobody'}")
