"""The coordinator of one campaign: proposes trials to its budget, runs them with the workers, then returns.

The gate is separate (:mod:`._gatekeeper`); a `darkfab worker` runs :class:`._worker_loop.WorkerLoop` instead.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from ..errors import StoreError
from ..evaluate import Evaluation, metric_value
from ..events import StopReason
from ..execute import JobDone, JobReport
from ..propose import Proposal, Proposer
from ..store import TrialRecord
from ..train import TrialOutput
from ._budget import Stop
from ._ensemble import EnsemblePool
from ._parts import is_script
from ._trials import COUNTED, CampaignContext, TrialLoop
from ._views import proposal_of, row_of, trial_view

STOP_PAUSED = StopReason.PAUSED.value  # the stop reason of a campaign whose factory a person paused


class Coordinator(TrialLoop):
    """Drives the search half of one campaign to its budget, then returns."""

    def __init__(self, ctx: CampaignContext, proposer: Proposer) -> None:
        super().__init__(ctx)
        self.proposer = proposer
        self.prunes = self.spec.search.pruner != "none" and len(self.objectives) == 1
        self.pool = EnsemblePool()  # the best completed trials of this run, for the ensemble
        self.stop: Stop | None = None
        self._worker_slots = 0  # slots of the `darkfab worker` processes seen within a lease

    @property
    def stopped_because(self) -> str:
        return self.stop.message if self.stop is not None else ""

    # -- hooks ---------------------------------------------------------------------------------
    def _housekeep_role(self) -> None:
        self._worker_slots = self._count_workers()
        self._observe_others()

    def _completed(self, trial: TrialRecord, evaluation: Evaluation, out: TrialOutput) -> None:
        if is_script(self.spec, trial.trainer):  # loading its model here would run the script's code
            return
        self.pool.add(trial.id, evaluation, out, trainer=trial.trainer)

    def _observe(self, proposal: Proposal, finished: TrialRecord) -> None:
        self.proposer.observe(proposal, trial_view(finished, self.objectives))

    def _on_report(self, event: JobReport) -> None:
        run = self.running.get(event.job_id)
        if run is None:
            self.executor.answer(event.job_id, stop=True)
            return
        got = metric_value(
            self.task,
            self.metric,
            self.data.y_valid,
            event.predictions,
            n_classes=self.data.n_classes,
            custom=self.reward.custom,
        )
        value = math.nan if got is None else got
        run.intermediate[event.step] = value
        stop = bool(np.isfinite(value)) and self.proposer.should_prune(run.proposal, event.step, value)
        self.executor.answer(event.job_id, stop=stop)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> Stop:
        """Propose and run trials until a budget, the proposer or a person's pause stops the campaign."""
        t0 = time.monotonic()
        self._load_board()
        self._emit("campaign_started", f"campaign {self.campaign.number} of {self.spec.name}", t0)
        last_save = time.monotonic()
        while self.stop is None:
            self.stop = self._step(t0)
            now = time.monotonic()
            self._housekeeping(now)
            if now - last_save > 1.0:
                self.store.update_campaign(self.campaign.id, elapsed_s=self._elapsed(t0), cpu_s=self.budget.spent_cpu_s)
                last_save = now
        self.budget.spent_time_s = self._elapsed(t0)
        self.store.update_campaign(self.campaign.id, elapsed_s=self.budget.spent_time_s, cpu_s=self.budget.spent_cpu_s)
        return self.stop

    def _load_board(self) -> None:
        for t in self.store.list_trials(campaign_id=self.campaign.id):
            self.board[t.id] = row_of(t)
            if t.state in COUNTED:
                self._seen_finished.add(t.id)
            if t.state == "completed" and t.artifact_path:
                self._consider_kept(t)
        self._worker_slots = self._count_workers()

    def _step(self, t0: float) -> Stop | None:
        """One turn of the loop: stop, or fill the free slots and wait briefly for what the executor reports."""
        exhausted = self.budget.exhausted_by(self._elapsed(t0), self.budget.spent_cpu_s)
        if exhausted is not None:
            self._stop_all(exhausted.message, t0)
            return exhausted
        if self._is_paused():  # no new trial; stop once those in flight are recorded
            if not self.running:
                return Stop(StopReason.PAUSED, STOP_PAUSED)
            self._poll(0.2, t0)
            return None
        stop = self._propose_and_start(t0)
        if stop is not None:
            return stop
        timeout = 0.2
        if self.budget.time_s is not None:
            timeout = max(0.0, min(timeout, self.budget.time_s - self._elapsed(t0)))
        self._poll(timeout, t0)
        return None

    def _propose_and_start(self, t0: float) -> Stop | None:
        free = self._claim(self.executor.capacity - self.executor.in_flight)
        counts = self._counts()
        queued, running = counts.get("queued", 0), counts.get("running", 0)
        planned = sum(counts.get(s, 0) for s in COUNTED) + queued + running
        others = running - len(self.running)  # trials other workers are running now
        idle_elsewhere = max(0, self._worker_slots - others)  # slots of announced workers waiting for work
        want = free + self.spec.execution.queue_ahead + idle_elsewhere - queued
        trials = self.budget.trials
        if want > 0 and (trials is None or planned < trials):
            proposals = self.proposer.propose(want if trials is None else min(want, trials - planned))
            if not proposals and not running and not queued:
                # a proposer that stopped for good (an LLM budget spent) says why; the others ran dry
                if self.proposer.stop_reason is not None:
                    return Stop(self.proposer.stop_reason, self.proposer.exhausted)
                return Stop(StopReason.NOTHING_TO_PROPOSE, "the proposer had nothing more to propose")
            for proposal in proposals:
                free = self._add(proposal, planned, free, t0)
                planned += 1
        if not self.running and not running and not queued:
            if trials is not None and planned >= trials and self._nothing_left_in_store():
                return Stop(StopReason.TRIAL_BUDGET, f"trial budget of {trials} reached")
        return None

    def _add(self, proposal: Proposal, planned: int, free: int, t0: float) -> int:
        """Record a proposal as a trial, started at once when a slot is free; the free slots left."""
        t = self.store.add_trial(
            self.campaign.id,
            proposer=proposal.proposer,
            trainer=proposal.trainer,
            params=proposal.params,
            reason=proposal.reason,
            key=proposal.key,
            parents=proposal.parents,
            patch=proposal.patch,
            seed=self.spec.search.seed * 100_003 + planned,
            start_as=self.owner if free > 0 else None,  # one transaction when a slot is free
            lease_s=self.lease_s,
        )
        self._moved(None, t.state)
        if free > 0 and self._start(t, proposal):
            self._emit("trial_started", f"trial {t.number} started: {t.trainer}", t0, self.board[t.id])
            return free - 1
        return free

    # -- other workers -------------------------------------------------------------------------
    def _count_workers(self) -> int:
        return self.store.worker_slots(self.spec.name, within_s=self.lease_s, exclude=self.owner)

    def _nothing_left_in_store(self) -> bool:
        """The counts in memory may lag other workers by half a second: ask the store before stopping."""
        self._state_counts = None
        counts = self._counts()
        return not counts.get("queued", 0) and not counts.get("running", 0)

    def _observe_others(self) -> None:
        local = {r.record.id for r in self.running.values()}
        for t in self.store.list_trials(campaign_id=self.campaign.id, states=COUNTED):
            if t.id in self._seen_finished or t.id in local:
                continue
            self._seen_finished.add(t.id)
            self.board[t.id] = row_of(t)
            if t.state == "completed" and t.artifact_path:
                self._consider_kept(t)
            self.proposer.observe(proposal_of(t), trial_view(t, self.objectives))

    def _stop_all(self, reason: str, t0: float) -> None:
        for job_id in list(self.running):
            self.executor.cancel(job_id, reason)
        local = {r.record.id for r in self.running.values()}
        for t in self.store.list_trials(campaign_id=self.campaign.id, states=("queued", "running")):
            if t.id not in local:  # queued, or running on another worker, which sees the cancel and stops
                with contextlib.suppress(StoreError):
                    self.store.finish_trial(
                        t.id, state="cancelled", error=reason, failure_kind="cancelled", reason=reason
                    )
        deadline = time.monotonic() + 30
        while self.running and time.monotonic() < deadline:
            for event in self.executor.poll(0.2):
                if isinstance(event, JobDone):
                    self._on_done(event, t0)
                elif isinstance(event, JobReport):
                    self.executor.answer(event.job_id, stop=True)

    # -- the ensemble --------------------------------------------------------------------------
    def build_ensemble(self) -> TrialRecord | None:
        """Greedy ensemble selection over this run's best candidates, as one more completed trial (or None)."""
        if len(self.objectives) > 1:
            return None
        return self.pool.build(self)
