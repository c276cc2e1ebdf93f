"""What the coordinator and a worker both do with a trial: lease it, hand it to the executor, score its answers
here (never in the candidate's process) and record it. Every state change goes to the store as it happens, so
a killed process resumes where it stopped: queued trials run, completed ones never again.
"""

from __future__ import annotations

import heapq
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import Dataset
from ..errors import StoreError
from ..evaluate import Evaluation, RewardModel, compute_metrics, cross_validated
from ..events import EventKind
from ..execute import Executor, JobDone, JobReport, TrainJob
from ..propose import Proposal
from ..registry import ArtifactStore
from ..results import Progress, TrialRow
from ..spec import FactorySpec
from ..store import CampaignRecord, Pauses, Store, TrialRecord, TrialState
from ..train import TrialOutput, TrialRequest
from ._budget import Budget
from ._parts import cv_folds_for, default_owner
from ._views import board_key, breakdown, completed_reason, proposal_of, row_of

KEEP_ARTIFACTS = 3  # best candidates whose artifacts are kept for the gate
BOARD_KEEP = 50  # leaderboard rows kept in memory
REPORT_EVERY = 25  # boosting rounds between intermediate scores, when a pruner is on
COUNTED = ("completed", "failed", "pruned")  # trial states that count against the trial budget (not cancelled)
PAUSE_POLL_S = 1.0  # how often a running campaign or worker asks the store whether its factory is paused


@dataclass
class Running:
    """A trial this process handed to its executor."""

    record: TrialRecord
    proposal: Proposal
    started: float
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignContext:
    """What both loops over one campaign's trials are given."""

    spec: FactorySpec
    store: Store
    campaign: CampaignRecord
    dataset: Dataset
    executor: Executor
    reward: RewardModel
    budget: Budget
    artifacts: ArtifactStore
    on_progress: Callable[[Progress], None] | None = None
    owner: str | None = None


class TrialLoop:
    """The trial bookkeeping the coordinator (:class:`Coordinator`) and a worker (:class:`WorkerLoop`) share."""

    prunes = False  # whether trials report intermediate scores (only a coordinator has the pruner)

    def __init__(self, ctx: CampaignContext) -> None:
        spec, dataset = ctx.spec, ctx.dataset
        self.spec = spec
        self.store = ctx.store
        self.campaign = ctx.campaign
        self.data = dataset
        self.executor = ctx.executor
        self.reward = ctx.reward
        self.budget = ctx.budget
        self.artifacts = ctx.artifacts
        self.on_progress = ctx.on_progress or (lambda p: None)
        self.owner = ctx.owner or default_owner("run", spec.name)
        self.lease_s = spec.execution.lease
        self.task = dataset.task
        self.metric = spec.primary_metric(dataset.task)
        self.objectives = tuple(spec.search.objectives) or (self.metric,)
        self.cv_folds = cv_folds_for(spec, dataset, ctx.budget.time_s)
        self.running: dict[str, Running] = {}
        self.board: dict[int, TrialRow] = {}
        self.kept: list[tuple[tuple[float, ...], int]] = []  # (rank key, trial id) of kept artifacts
        self._last_lease = time.monotonic()
        self._seen_finished: set[int] = set()
        self._state_counts: dict[str, int] | None = None
        self._top: tuple[TrialRow, ...] = ()
        self._board_at = 0.0
        self._counted_at = 0.0
        self._pauses = Pauses(ctx.store)
        self._paused = False
        self._pause_checked = -math.inf

    # -- hooks of the two loops ----------------------------------------------------------------
    def _housekeep_role(self) -> None:
        """What the coordinator or a worker does on each lease renewal."""

    def _completed(self, trial: TrialRecord, evaluation: Evaluation, out: TrialOutput) -> None:
        """A trial of this process completed (the coordinator keeps it for the ensemble)."""

    def _observe(self, proposal: Proposal, finished: TrialRecord) -> None:
        """A trial finished (the coordinator tells its proposer)."""

    # -- state ---------------------------------------------------------------------------------
    def _is_paused(self) -> bool:
        """Whether a person paused the factory (read from the store at most once a PAUSE_POLL_S)."""
        now = time.monotonic()
        if now - self._pause_checked >= PAUSE_POLL_S:
            self._pause_checked = now
            self._paused = self._pauses.state(self.campaign.factory_id) is not None
        return self._paused

    def _elapsed(self, t0: float) -> float:
        return self.budget.spent_time_s + (time.monotonic() - t0)

    def _counts(self) -> dict[str, int]:
        """Trial states of the campaign: kept in memory, re-read from the store now and then (other workers)."""
        now = time.monotonic()
        if self._state_counts is None or now - self._counted_at > 0.5:
            self._state_counts = dict(self.store.count_trials(self.campaign.id))
            self._counted_at = now
        return self._state_counts

    def _moved(self, old: str | None, new: str) -> None:
        """Apply a change this process just wrote to the store to the counts it keeps in memory."""
        counts = self._state_counts
        if counts is None:  # nothing cached: the next read sees the change in the store
            return
        if old is not None:
            counts[old] = counts.get(old, 0) - 1
        counts[new] = counts.get(new, 0) + 1

    def _emit(self, kind: Any, message: str, t0: float, row: TrialRow | None = None) -> None:
        counts = self._counts()
        done = sum(counts.get(s, 0) for s in COUNTED)
        now = time.monotonic()
        if now - self._board_at > 0.2 or kind != "trial_started":  # ranking every start would cost O(n) each
            self._top = tuple(heapq.nlargest(10, self.board.values(), key=board_key))
            self._board_at = now
            if len(self.board) > 4 * BOARD_KEEP:  # the store has every trial; memory keeps the leaders only
                keep = {r.trial_id for r in heapq.nlargest(BOARD_KEEP, self.board.values(), key=board_key)}
                self.board = {k: r for k, r in self.board.items() if k in keep or r.state == "running"}
        self.on_progress(
            Progress(
                kind=kind,
                message=message,
                trials_done=done,
                trials_total=self.budget.trials,
                elapsed_s=self._elapsed(t0),
                time_limit_s=self.budget.time_s,
                leaderboard=self._top,
                row=row,
            )
        )

    # -- starting ------------------------------------------------------------------------------
    def _request(self, t: TrialRecord) -> TrialRequest:
        trainer = next(x for x in self.spec.trainers if x.name == t.trainer)
        return TrialRequest(
            trial_id=t.id,
            trainer=trainer,
            params=dict(t.params),
            seed=t.seed,
            report_every=REPORT_EVERY if self.prunes else 0,
            cv_folds=self.cv_folds,
            patch=t.patch,
        )

    def _start(self, t: TrialRecord, proposal: Proposal) -> bool:
        """Lease a queued trial to this process and hand it to the executor; False if another took it."""
        if t.state != "running" or t.lease_owner != self.owner:
            try:
                self.store.start_trial(t.id, worker=self.owner, lease_owner=self.owner, lease_s=self.lease_s)
            except StoreError:  # claimed by another worker an instant before
                return False
            self._moved("queued", "running")
        job_id = f"t{t.id}-{uuid.uuid4().hex[:6]}"
        self.running[job_id] = Running(record=t, proposal=proposal, started=time.monotonic())
        self.executor.submit(TrainJob(job_id=job_id, request=self._request(t)))
        self.board[t.id] = replace(row_of(t), state="running")
        return True

    def _claim(self, free: int) -> int:
        """Take queued trials (requeued, or proposed for any worker) for free local slots."""
        while free > 0:
            if self._counts().get("queued", 0) <= 0:
                break
            t = self.store.claim_trial(self.campaign.id, worker=self.owner, lease_s=self.lease_s)
            if t is None:
                self._state_counts = None  # what we thought was queued is not: count again
                break
            self._moved("queued", "running")
            self._start(t, proposal_of(t))
            free -= 1
        return free

    def _housekeeping(self, now: float) -> None:
        """Renew our leases, take back those of silent workers, then what the role does."""
        if now - self._last_lease >= self.lease_s / 3:
            self._last_lease = now
            mine = [r.record.id for r in self.running.values()]
            if mine:
                self.store.heartbeat(mine, lease_s=self.lease_s)
            self.store.reclaim_expired(self.campaign.id, reason="its worker went silent past the lease; requeued")
            self._housekeep_role()

    # -- finishing -----------------------------------------------------------------------------
    def _on_done(self, event: JobDone, t0: float) -> bool:
        run = self.running.pop(event.job_id, None)
        if run is None:
            return False
        try:
            return self._finish(run, event, t0)
        except StoreError as err:  # our lease was reclaimed or the trial cancelled meanwhile: its result is not ours
            self.store.append_event(
                kind=EventKind.RESULT_DROPPED,
                reason=str(err),
                factory_id=run.record.factory_id,
                campaign_id=self.campaign.id,
                trial_id=run.record.id,
            )
            return False

    def _finish(self, run: Running, event: JobDone, t0: float) -> bool:
        t = run.record
        self.budget.spent_cpu_s += event.cpu_seconds
        resources = {
            "cpu_seconds": round(event.cpu_seconds, 4),
            "peak_rss_mb": round(event.peak_rss_mb, 1),
            "wall_seconds": round(time.monotonic() - run.started, 4),
            "attempts": event.attempts,
            "worker": event.worker,
        }
        last = run.intermediate[max(run.intermediate)] if run.intermediate else None
        evaluation: Evaluation | None = None
        state: TrialState
        if event.ok and isinstance(event.output, TrialOutput):
            evaluation = self.evaluate(event.output)
            state = "completed"
            self._record_completed(run, event, evaluation, resources)
        else:
            state = _failed_state(event.failure)
            self.store.finish_trial(
                t.id,
                state=state,
                value=last if state == "pruned" else None,
                error=event.error,
                failure_kind=event.failure,
                log_tail=event.log_tail,
                resources=resources,
                intermediate=run.intermediate,
                reason=event.error or state,
                lease_owner=self.owner,
            )
        self._moved("running", state)
        self._seen_finished.add(t.id)
        value = evaluation.value if evaluation is not None else (last if state == "pruned" else None)
        finished = replace(
            t,
            state=state,
            value=value,
            attempt=t.attempt + (0 if t.state == "running" else 1),
            metrics=evaluation.metrics if evaluation is not None else {},
            reward=evaluation.reward if evaluation is not None else None,
            feasible=evaluation.feasible if evaluation is not None else None,
            error=None if state == "completed" else event.error,
            intermediate=dict(run.intermediate),
            resources=resources,
        )
        self.board[t.id] = row_of(finished)
        self._observe(run.proposal, finished)
        self._emit("trial_finished", f"trial {t.number} {state}", t0, self.board[t.id])
        return True

    def _record_completed(
        self, run: Running, event: JobDone, evaluation: Evaluation, resources: dict[str, Any]
    ) -> None:
        out = event.output
        assert isinstance(out, TrialOutput)  # the caller checked
        t = run.record
        artifact_path = self._maybe_keep(t.id, evaluation, out.artifact)
        self._completed(t, evaluation, out)
        self.record_completed(
            t.id,
            evaluation,
            artifact_path=artifact_path,
            resources=resources,
            log_tail=event.log_tail,
            intermediate=run.intermediate,
        )

    def record_completed(
        self,
        trial_id: int,
        evaluation: Evaluation,
        *,
        artifact_path: str | None,
        resources: dict[str, Any],
        log_tail: str = "",
        intermediate: dict[int, float] | None = None,
    ) -> None:
        """End a trial of this process as completed, with the figures this process computed and its reward."""
        self.store.finish_trial(
            trial_id,
            state="completed",
            value=evaluation.value,
            metrics=evaluation.metrics,
            reward=evaluation.reward,
            feasible=evaluation.feasible,
            breakdown=breakdown(evaluation),
            log_tail=log_tail,
            resources=resources,
            intermediate=intermediate,
            artifact_path=artifact_path,
            reason=completed_reason(self.metric, evaluation),
            lease_owner=self.owner,
        )

    def evaluate(self, out: TrialOutput) -> Evaluation:
        """A trial's metrics, computed here from its answers on the validation rows, and its reward."""
        metrics = compute_metrics(
            self.task,
            self.data.y_valid,
            out.valid_predictions,
            n_classes=self.data.n_classes,
            groups=self.data.groups_valid,
            custom=self.reward.custom,
        )
        if (
            out.oof_predictions is not None
            and out.oof_folds is not None
            and len(out.oof_folds) == len(self.data.y_train)
        ):
            metrics.update(
                cross_validated(
                    self.task,
                    self.metric,
                    self.data.y_train,
                    out.oof_predictions,
                    out.oof_folds,
                    metrics,
                    n_classes=self.data.n_classes,
                    custom=self.reward.custom,
                )
            )
        lat = np.asarray(out.latency_ms, dtype=float)
        metrics.update(
            {
                "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else math.nan,
                "latency_p95_ms": float(np.percentile(lat, 95)) if lat.size else math.nan,
                "batch_latency_ms": float(out.batch_latency_ms),
                "model_size_mb": len(out.artifact) / 1e6,
                "train_seconds": float(out.train_seconds),
                "train_cpu_seconds": float(out.train_cpu_seconds),
            }
        )
        return self.reward.evaluate({k: float(v) for k, v in metrics.items()})

    # -- artifacts kept for the gate -----------------------------------------------------------
    def _consider_kept(self, t: TrialRecord) -> None:
        key = (1.0 if t.feasible else 0.0, float(t.reward if t.reward is not None else -math.inf))
        self.kept.append((key, t.id))
        self.kept.sort(reverse=True)
        del self.kept[KEEP_ARTIFACTS:]

    def _maybe_keep(self, trial_id: int, evaluation: Evaluation, artifact: bytes) -> str | None:
        key = tuple(float(x) for x in evaluation.rank_key)
        if len(self.kept) >= KEEP_ARTIFACTS and key <= self.kept[-1][0]:
            return None
        digest, _ = self.artifacts.put(artifact)
        self.kept.append((key, trial_id))
        self.kept.sort(reverse=True)
        del self.kept[KEEP_ARTIFACTS:]
        return digest

    def _poll(self, timeout: float, t0: float) -> int:
        """Handle what the executor reports within ``timeout``; how many trials of ours finished."""
        done = 0
        for event in self.executor.poll(timeout):
            if isinstance(event, JobReport):
                self._on_report(event)
            elif self._on_done(event, t0):
                done += 1
        return done

    def _on_report(self, event: JobReport) -> None:
        """An intermediate score; without a pruner here, the trial goes on."""
        self.executor.answer(event.job_id, stop=False)


def _failed_state(failure: str | None) -> TrialState:
    return "pruned" if failure == "pruned" else ("cancelled" if failure == "cancelled" else "failed")
