"""One campaign of the control loop: propose, execute, evaluate, then select and gate.

Owns no algorithm: each step is a call into a package. Every state change goes to the store as it
happens, so a killed process resumes where it stopped: queued trials run, completed ones never again.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..data import Dataset, jittered
from ..errors import StoreError
from ..evaluate import Evaluation, RewardModel, compute_metrics
from ..execute import Executor, JobDone, JobReport, Limits, PredictJob, TrainJob
from ..propose import Proposal, Proposer, TrialView
from ..registry import ArtifactStore
from ..results import Progress, TrialRow
from ..spec import FactorySpec
from ..store import CampaignRecord, Pauses, Store, TrialRecord, TrialState
from ..train import EnsembleModel, TrialOutput, TrialRequest, WorkerPayload, greedy_weights, load_model

KEEP_ARTIFACTS = 3  # best candidates whose artifacts are kept for the gate
ENSEMBLE_POOL = 8  # best candidates of a run kept in memory for greedy ensemble selection
BOARD_KEEP = 50  # leaderboard rows kept in memory
REPORT_EVERY = 25  # boosting rounds between intermediate scores, when a pruner is on
FINISHED = ("completed", "failed", "pruned")
STOP_PAUSED = "paused"  # the stop reason of a campaign whose factory a person paused
PAUSE_POLL_S = 1.0  # how often a running campaign or worker asks the store whether its factory is paused


@dataclass
class _Running:
    record: TrialRecord
    proposal: Proposal
    started: float
    intermediate: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Member:
    """A completed trial kept for ensemble selection: its rank, its answers on unseen rows, its model."""

    rank: tuple[float, ...]
    valid: np.ndarray
    oof: np.ndarray | None
    folds: np.ndarray | None
    artifact: bytes
    train_seconds: float
    train_cpu_seconds: float


@dataclass
class Budget:
    """Hard limits of one campaign and what has been spent against them."""

    trials: int | None
    time_s: float | None
    cpu_s: float | None
    spent_time_s: float = 0.0
    spent_cpu_s: float = 0.0

    def exhausted_by(self, elapsed: float, cpu: float) -> str:
        if self.time_s is not None and elapsed >= self.time_s:
            return f"wall-time budget of {self.time_s:g}s reached"
        if self.cpu_s is not None and cpu >= self.cpu_s:
            return f"CPU budget of {self.cpu_s:g}s reached"
        return ""


CV_ROWS = ((500, 5), (1_000, 3))
"""(most labelled rows, folds) of `search.cv: auto`: small data gets k-fold scores, larger data one split."""


def cv_folds_for(spec: FactorySpec, data: Dataset, time_s: float | None) -> int:
    """Training folds each built-in trial also fits, so the search's score is not one small split's luck."""
    chosen = spec.search.cv
    if len(spec.search.objectives) > 1:
        return 0  # multi-objective searches compare several figures; they stay on the validation split
    if chosen != "auto":
        return int(chosen)
    rows = len(data.y_train) + len(data.y_valid)
    for most, folds in CV_ROWS:
        if rows <= most:
            return min(folds, 3) if time_s is not None and time_s < 30 else folds  # a short budget: fewer fits
    return 0


def trial_view(t: TrialRecord, objective_names: tuple[str, ...]) -> TrialView:
    metrics = t.metrics or {}
    values = None
    if t.state == "completed" and len(objective_names) > 1:
        values = tuple(float(metrics.get(n, math.nan)) for n in objective_names)
    return TrialView(
        trial_id=t.id,
        proposer=t.proposer,
        trainer=t.trainer,
        params=dict(t.params),
        state=t.state,
        value=t.value,
        values=values,
        intermediate={int(k): float(v) for k, v in (t.intermediate or {}).items()},
        reward=t.reward,
        feasible=t.feasible,
        error=t.error,
        metrics=dict(t.metrics or {}),
        seconds=(t.resources or {}).get("wall_seconds"),
    )


def row_of(t: TrialRecord) -> TrialRow:
    return TrialRow(
        trial_id=t.id,
        number=t.number,
        proposer=t.proposer,
        trainer=t.trainer,
        params=dict(t.params),
        state=t.state,
        value=t.value,
        reward=t.reward,
        feasible=t.feasible,
        error=t.error,
    )


class CampaignRun:
    """Drives the search half of one campaign to its budget, then returns. The gate is separate."""

    def __init__(
        self,
        *,
        spec: FactorySpec,
        store: Store,
        campaign: CampaignRecord,
        dataset: Dataset,
        proposer: Proposer | None,
        executor: Executor,
        reward: RewardModel,
        budget: Budget,
        artifacts: ArtifactStore,
        on_progress: Callable[[Progress], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.spec = spec
        self.owner = owner or default_owner("run", spec.name)
        self.lease_s = spec.execution.lease
        self._last_lease = time.monotonic()
        self._seen_finished: set[int] = set()
        self._state_counts: dict[str, int] | None = None
        self._top: tuple[TrialRow, ...] = ()
        self._board_at = 0.0
        self._counted_at = 0.0
        self._worker_slots = 0  # slots of the `darkfab worker` processes seen within a lease (coordinator)
        self.store = store
        self.campaign = campaign
        self.data = dataset
        self.proposer = proposer
        self.executor = executor
        self.reward = reward
        self.budget = budget
        self.artifacts = artifacts
        self.on_progress = on_progress or (lambda p: None)
        self.task = dataset.task
        self.metric = spec.primary_metric(dataset.task)
        self.objectives = tuple(spec.search.objectives) or (self.metric,)
        self.running: dict[str, _Running] = {}
        self.board: dict[int, TrialRow] = {}
        self.kept: list[tuple[tuple[float, ...], int]] = []  # (rank key, trial id) of kept artifacts
        self.stopped_because = ""
        self.cv_folds = cv_folds_for(spec, dataset, budget.time_s)
        self._pool: dict[int, _Member] = {}  # the best completed trials of this run, for the ensemble
        self._pauses = Pauses(store)
        self._paused = False
        self._pause_checked = -math.inf

    # -- helpers -------------------------------------------------------------------------------
    def _is_paused(self) -> bool:
        """Whether a person paused the factory (read from the store at most once a PAUSE_POLL_S)."""
        now = time.monotonic()
        if now - self._pause_checked >= PAUSE_POLL_S:
            self._pause_checked = now
            self._paused = self._pauses.state(self.campaign.factory_id) is not None
        return self._paused

    def _drain(self, t0: float) -> None:
        """Paused: start nothing, let the trials in flight finish and record them."""
        for event in self.executor.poll(0.2):
            if isinstance(event, JobReport):
                self._on_report(event)
            else:
                self._on_done(event, t0)
        self._housekeeping(time.monotonic())

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
        done = sum(counts.get(s, 0) for s in FINISHED)
        now = time.monotonic()
        if now - self._board_at > 0.2 or kind != "trial_started":  # ranking every start would cost O(n) each
            self._top = tuple(heapq.nlargest(10, self.board.values(), key=_board_key))
            self._board_at = now
            if len(self.board) > 4 * BOARD_KEEP:  # the store has every trial; memory keeps the leaders only
                keep = {r.trial_id for r in heapq.nlargest(BOARD_KEEP, self.board.values(), key=_board_key)}
                self.board = {k: r for k, r in self.board.items() if k in keep or r.state == "running"}
        board = self._top
        self.on_progress(
            Progress(
                kind=kind,
                message=message,
                trials_done=done,
                trials_total=self.budget.trials,
                elapsed_s=self._elapsed(t0),
                time_limit_s=self.budget.time_s,
                leaderboard=tuple(board),
                row=row,
            )
        )

    def _request(self, t: TrialRecord) -> TrialRequest:
        trainer = next(x for x in self.spec.trainers if x.name == t.trainer)
        prunes = self.proposer is not None and self.spec.search.pruner != "none" and len(self.objectives) == 1
        report = REPORT_EVERY if prunes else 0
        return TrialRequest(
            trial_id=t.id,
            trainer=trainer,
            params=dict(t.params),
            seed=t.seed,
            report_every=report,
            cv_folds=self.cv_folds,
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
        self.running[job_id] = _Running(record=t, proposal=proposal, started=time.monotonic())
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
            self._start(t, _proposal_of(t))
            free -= 1
        return free

    def _housekeeping(self, now: float) -> None:
        """Renew our leases, take back those of silent workers, learn what other workers finished."""
        if now - self._last_lease >= self.lease_s / 3:
            self._last_lease = now
            mine = [r.record.id for r in self.running.values()]
            if mine:
                self.store.heartbeat(mine, lease_s=self.lease_s)
            self.store.reclaim_expired(self.campaign.id, reason="its worker went silent past the lease; requeued")
            if self.proposer is not None:
                self._worker_slots = self._count_workers()
                self._observe_others()
            else:  # a worker: say it is alive, stop trials the coordinator cancelled or another worker took over
                self.store.announce_worker(self.spec.name, owner=self.owner, slots=self.executor.capacity)
                self._drop_lost_leases()

    def _count_workers(self) -> int:
        return self.store.worker_slots(self.spec.name, within_s=self.lease_s, exclude=self.owner)

    def _nothing_left_in_store(self) -> bool:
        """The counts in memory may lag other workers by half a second: ask the store before stopping."""
        self._state_counts = None
        counts = self._counts()
        return not counts.get("queued", 0) and not counts.get("running", 0)

    def _observe_others(self) -> None:
        local = {r.record.id for r in self.running.values()}
        for t in self.store.list_trials(campaign_id=self.campaign.id, states=FINISHED):
            if t.id in self._seen_finished or t.id in local:
                continue
            self._seen_finished.add(t.id)
            self.board[t.id] = row_of(t)
            if t.state == "completed" and t.artifact_path:
                self._consider_kept(t)
            if self.proposer is not None:
                self.proposer.observe(_proposal_of(t), trial_view(t, self.objectives))

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> str:
        assert self.proposer is not None, "a campaign run needs a proposer"
        t0 = time.monotonic()
        for t in self.store.list_trials(campaign_id=self.campaign.id):
            self.board[t.id] = row_of(t)
            if t.state in FINISHED:
                self._seen_finished.add(t.id)
            if t.state == "completed" and t.artifact_path:
                self._consider_kept(t)
        self._worker_slots = self._count_workers()
        self._emit("campaign_started", f"campaign {self.campaign.number} of {self.spec.name}", t0)
        last_save = time.monotonic()
        while True:
            reason = self.budget.exhausted_by(self._elapsed(t0), self.budget.spent_cpu_s)
            if reason:
                self._stop_all(reason, t0)
                self.stopped_because = reason
                break
            if self._is_paused():  # no new trial; stop once those in flight are recorded
                if not self.running:
                    self.stopped_because = STOP_PAUSED
                    break
                self._drain(t0)
                continue
            free = self._claim(self.executor.capacity - self.executor.in_flight)
            counts = self._counts()
            finished = sum(counts.get(s, 0) for s in FINISHED)
            queued, running = counts.get("queued", 0), counts.get("running", 0)
            planned = finished + queued + running
            others = running - len(self.running)  # trials other workers are running now
            idle_elsewhere = max(0, self._worker_slots - others)  # slots of announced workers waiting for work
            want = free + self.spec.execution.queue_ahead + idle_elsewhere - queued
            if want > 0 and (self.budget.trials is None or planned < self.budget.trials):
                n = want if self.budget.trials is None else min(want, self.budget.trials - planned)
                proposals = self.proposer.propose(n)
                if not proposals and not running and not queued:
                    # a proposer that stopped for good (an LLM budget spent) says why; the others ran dry
                    self.stopped_because = self.proposer.exhausted or "the proposer had nothing more to propose"
                    break
                for proposal in proposals:
                    t = self.store.add_trial(
                        self.campaign.id,
                        proposer=proposal.proposer,
                        trainer=proposal.trainer,
                        params=proposal.params,
                        reason=proposal.reason,
                        key=proposal.key,
                        parents=proposal.parents,
                        seed=self.spec.search.seed * 100_003 + planned,
                        start_as=self.owner if free > 0 else None,  # one transaction when a slot is free
                        lease_s=self.lease_s,
                    )
                    planned += 1
                    self._moved(None, t.state)
                    if free > 0 and self._start(t, proposal):
                        free -= 1
                        self._emit("trial_started", f"trial {t.number} started: {t.trainer}", t0, self.board[t.id])
            if not self.running and not running and not queued:
                if self.budget.trials is not None and planned >= self.budget.trials and self._nothing_left_in_store():
                    self.stopped_because = f"trial budget of {self.budget.trials} reached"
                    break
            timeout = 0.2
            if self.budget.time_s is not None:
                timeout = max(0.0, min(timeout, self.budget.time_s - self._elapsed(t0)))
            for event in self.executor.poll(timeout):
                if isinstance(event, JobReport):
                    self._on_report(event)
                else:
                    self._on_done(event, t0)
            now = time.monotonic()
            self._housekeeping(now)
            if now - last_save > 1.0:
                self.store.update_campaign(self.campaign.id, elapsed_s=self._elapsed(t0), cpu_s=self.budget.spent_cpu_s)
                last_save = now
        self.budget.spent_time_s = self._elapsed(t0)
        self.store.update_campaign(self.campaign.id, elapsed_s=self.budget.spent_time_s, cpu_s=self.budget.spent_cpu_s)
        return self.stopped_because

    def work(self, *, stop_when: Callable[[], bool]) -> int:
        """Worker mode (`darkfab worker`): claim and run this campaign's queued trials until it finishes."""
        t0 = time.monotonic()
        done = 0
        while True:
            if not self._is_paused():  # paused: finish the trials in flight, claim no new one
                self._claim(self.executor.capacity - self.executor.in_flight)
            for event in self.executor.poll(0.2):
                if isinstance(event, JobReport):
                    self.executor.answer(event.job_id, stop=False)  # the pruner lives with the proposer
                elif self._on_done(event, t0):
                    done += 1
            now = time.monotonic()
            self._housekeeping(now)
            if not self.running and stop_when():
                return done

    def _drop_lost_leases(self) -> None:
        if not self.running:
            return
        ids = {r.record.id: job for job, r in self.running.items()}
        for t in self.store.list_trials(campaign_id=self.campaign.id):
            if t.id in ids and (t.state != "running" or t.lease_owner != self.owner):
                # cancelled by the coordinator, or reclaimed by another worker: stop working on it
                self.executor.cancel(ids[t.id], f"trial {t.id} is {t.state} under {t.lease_owner or 'nobody'}")

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

    def _on_report(self, event: JobReport) -> None:
        run = self.running.get(event.job_id)
        if run is None:
            self.executor.answer(event.job_id, stop=True)
            return
        value = compute_metrics(
            self.task, self.data.y_valid, event.predictions, n_classes=self.data.n_classes, custom=self.reward.custom
        ).get(self.metric, math.nan)
        run.intermediate[event.step] = float(value)
        assert self.proposer is not None, "reports come only to run(), which has a proposer"
        stop = bool(np.isfinite(value)) and self.proposer.should_prune(run.proposal, event.step, float(value))
        self.executor.answer(event.job_id, stop=stop)

    def _on_done(self, event: JobDone, t0: float) -> bool:
        run = self.running.pop(event.job_id, None)
        if run is None:
            return False
        try:
            return self._finish(run, event, t0)
        except StoreError as err:  # our lease was reclaimed or the trial cancelled meanwhile: its result is not ours
            self.store.append_event(
                kind="result_dropped",
                reason=str(err),
                factory_id=run.record.factory_id,
                campaign_id=self.campaign.id,
                trial_id=run.record.id,
            )
            return False

    def _finish(self, run: _Running, event: JobDone, t0: float) -> bool:
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
            evaluation = self._evaluate(event.output)
            artifact_path = self._maybe_keep(t.id, evaluation, event.output.artifact)
            self._pool_add(t.id, evaluation, event.output)
            state = "completed"
            self.store.finish_trial(
                t.id,
                state=state,
                value=evaluation.value,
                metrics=evaluation.metrics,
                reward=evaluation.reward,
                feasible=evaluation.feasible,
                breakdown=_breakdown(evaluation),
                log_tail=event.log_tail,
                resources=resources,
                intermediate=run.intermediate,
                artifact_path=artifact_path,
                reason=_completed_reason(self.metric, evaluation),
                lease_owner=self.owner,
            )
        else:
            state = (
                "pruned" if event.failure == "pruned" else ("cancelled" if event.failure == "cancelled" else "failed")
            )
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
        if self.proposer is not None:
            self.proposer.observe(run.proposal, trial_view(finished, self.objectives))
        self._emit("trial_finished", f"trial {t.number} {state}", t0, self.board[t.id])
        return True

    def _evaluate(self, out: TrialOutput) -> Evaluation:
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
            metrics.update(self._cross_validated(out.oof_predictions, out.oof_folds, metrics))
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

    def _pool_add(self, trial_id: int, evaluation: Evaluation, out: TrialOutput) -> None:
        if self.proposer is None or not evaluation.feasible or not math.isfinite(evaluation.value):
            return  # a `darkfab worker` never builds the ensemble: it keeps no candidates in memory
        self._pool[trial_id] = _Member(
            rank=tuple(float(x) for x in evaluation.rank_key),
            valid=np.asarray(out.valid_predictions, dtype=float),
            oof=None if out.oof_predictions is None else np.asarray(out.oof_predictions, dtype=float),
            folds=out.oof_folds,
            artifact=out.artifact,
            train_seconds=float(out.train_seconds),
            train_cpu_seconds=float(out.train_cpu_seconds),
        )
        if len(self._pool) > ENSEMBLE_POOL:
            del self._pool[min(self._pool, key=lambda k: self._pool[k].rank)]

    def build_ensemble(self) -> TrialRecord | None:
        """Greedy ensemble selection over this run's best candidates, recorded as one more completed trial.

        Members are weighed on rows none of them was fitted on: their out-of-fold answers on the training rows
        (when the search cross-validated) and the validation split. The ensemble is scored, rewarded and
        constrained (size, latency) like any candidate, so it reaches the gate only on its merits. None when
        fewer than two candidates are kept or the selection keeps a single member.
        """
        ids = sorted(self._pool)
        members = [self._pool[i] for i in ids]
        if len(members) < 2 or self.proposer is None or len(self.objectives) > 1:
            return None
        with_oof = all(m.oof is not None for m in members)
        y = np.concatenate([self.data.y_train, self.data.y_valid]) if with_oof else self.data.y_valid
        answers = [np.concatenate([m.oof, m.valid]) if m.oof is not None and with_oof else m.valid for m in members]
        maximize = self.spec.direction(self.task) == "maximize"

        def score(p: np.ndarray) -> float:
            got = compute_metrics(self.task, y, p, n_classes=self.data.n_classes).get(self.metric, math.nan)
            return float(got) if math.isfinite(got) else (-math.inf if maximize else math.inf)

        weights = greedy_weights(answers, score, maximize=maximize)
        chosen = [(i, m, w) for i, m, w in zip(ids, members, weights, strict=True) if w > 0]
        if len(chosen) < 2:
            return None
        model = EnsembleModel([load_model(m.artifact) for _, m, _ in chosen], [w for _, _, w in chosen])
        artifact = model.to_bytes()
        lat: list[float] = []
        for i in range(min(self.spec.execution.latency_rows, len(self.data.X_valid))):
            t0 = time.perf_counter()
            model.predict_raw(self.data.X_valid.iloc[[i]])
            lat.append((time.perf_counter() - t0) * 1000.0)
        t0 = time.perf_counter()
        valid = np.sum([w * m.valid for _, m, w in chosen], axis=0)
        model.predict_raw(self.data.X_valid)
        batch_ms = (time.perf_counter() - t0) * 1000.0 * 1000.0 / max(1, len(self.data.X_valid))
        oof = np.sum([w * np.asarray(m.oof) for _, m, w in chosen], axis=0) if with_oof else None
        output = TrialOutput(
            valid_predictions=np.asarray(valid, dtype=float),
            artifact=artifact,
            train_seconds=sum(m.train_seconds for _, m, _ in chosen),
            train_cpu_seconds=sum(m.train_cpu_seconds for _, m, _ in chosen),
            latency_ms=tuple(lat),
            batch_latency_ms=batch_ms,
            oof_predictions=None if oof is None else np.asarray(oof, dtype=float),
            oof_folds=chosen[0][1].folds if with_oof else None,
        )
        evaluation = self._evaluate(output)
        shares = {str(i): round(w, 4) for i, _, w in chosen}
        on = "out-of-fold training rows and the validation split" if with_oof else "the validation split"
        t = self.store.add_trial(
            self.campaign.id,
            proposer="ensemble",
            trainer="ensemble",
            params={"members": [i for i, _, _ in chosen], "weights": [w for _, _, w in chosen]},
            reason=f"greedy ensemble selection over the {len(ids)} best candidates, weighed on {on}: {shares}",
            parents=tuple(i for i, _, _ in chosen),
            seed=self.spec.search.seed,
            start_as=self.owner,
            lease_s=self.lease_s,
        )
        digest, _ = self.artifacts.put(artifact)
        self.store.finish_trial(
            t.id,
            state="completed",
            value=evaluation.value,
            metrics=evaluation.metrics,
            reward=evaluation.reward,
            feasible=evaluation.feasible,
            breakdown=_breakdown(evaluation),
            resources={"wall_seconds": 0.0, "members": len(chosen)},
            artifact_path=digest,
            reason=_completed_reason(self.metric, evaluation),
            lease_owner=self.owner,
        )
        return self.store.get_trial(t.id)

    def _cross_validated(self, oof: np.ndarray, folds: np.ndarray, valid: dict[str, float]) -> dict[str, float]:
        """The primary metric as the mean over the training folds and the validation split, each scored here.

        The validation-only figure stays on record as ``valid_<metric>``; each fold's as ``cv_fold_<i>``.
        """
        scores = []
        for i in range(int(folds.max()) + 1):
            rows = folds == i
            got = compute_metrics(self.task, self.data.y_train[rows], oof[rows], n_classes=self.data.n_classes)
            scores.append(float(got.get(self.metric, math.nan)))
        scores.append(float(valid.get(self.metric, math.nan)))
        if not all(math.isfinite(x) for x in scores):
            return {}
        out = {f"cv_fold_{i + 1}": x for i, x in enumerate(scores[:-1])}
        out.update(
            {
                f"valid_{self.metric}": scores[-1],
                "cv_folds": float(len(scores)),
                "cv_std": float(np.std(scores)),
                self.metric: float(np.mean(scores)),
            }
        )
        return out

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


def default_owner(role: str, factory: str) -> str:
    """Lease owner of this process: a rerun of `darkfab run` on the same host takes its own leases back."""
    host = socket.gethostname()
    return f"{role}@{host}/{factory}" if role == "run" else f"{role}@{host}/{os.getpid()}"


def _proposal_of(t: TrialRecord) -> Proposal:
    return Proposal(
        proposer=t.proposer,
        trainer=t.trainer,
        params=dict(t.params),
        reason=t.reason,
        key=t.key,
        parents=tuple(t.parents),
    )


def _board_key(row: TrialRow) -> tuple[float, float, float]:
    done = 1.0 if row.state == "completed" else 0.0
    return (done, 1.0 if row.feasible else 0.0, row.reward if row.reward is not None else -math.inf)


def _breakdown(e: Evaluation) -> dict[str, Any]:
    return {"terms": e.breakdown, "violations": list(e.violations), "reward": e.reward, "feasible": e.feasible}


def _completed_reason(metric: str, e: Evaluation) -> str:
    text = f"valid {metric} = {e.value:.4f}, reward {e.reward:.4f}"
    if not e.feasible:
        text += "; infeasible: " + "; ".join(e.violations)
    return text


def worker_payload(data: Dataset, spec: FactorySpec) -> WorkerPayload:
    """Training rows with labels; validation and sealed-test rows WITHOUT labels."""
    return WorkerPayload(
        task=data.task,
        feature_types=dict(data.feature_types),
        n_classes=data.n_classes,
        X_train=data.X_train,
        y_train=data.y_train,
        X_valid=data.X_valid,
        X_test=data.X_test,
        threads=spec.execution.threads,
        latency_rows=spec.execution.latency_rows,
        classes=data.classes,
        private_paths=private_paths(spec),
        X_test_perturbed=jittered(data.X_test, data.X_train, seed=spec.search.seed),
    )


def private_paths(spec: FactorySpec) -> tuple[str, ...]:
    """The data source's file (a CSV, Parquet or SQLite file), which sandboxed code must never read."""
    source = spec.data.source
    if source.startswith("sqlite:"):
        source = source.split("///", 1)[-1]
    path = os.path.realpath(source) if not source.startswith("sklearn:") else ""
    return (path,) if path and os.path.exists(path) else ()


def limits_of(spec: FactorySpec) -> Limits:
    e = spec.execution
    return Limits(timeout_s=e.trial_timeout, memory_mb=e.memory_mb, retries=e.retries)


def predict_split(executor: Executor, artifact: bytes, split: str = "test", timeout: float = 600.0) -> np.ndarray:
    """Run one PredictJob to completion (the gate's sealed-test scoring)."""
    job_id = f"p-{uuid.uuid4().hex[:8]}"
    executor.submit(PredictJob(job_id=job_id, artifact=artifact, split=split))  # type: ignore[arg-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in executor.poll(0.5):
            if isinstance(event, JobDone) and event.job_id == job_id:
                if not event.ok or event.output is None:
                    raise RuntimeError(f"prediction failed: {event.error}")
                return np.asarray(event.output)
            if isinstance(event, JobReport):
                executor.answer(event.job_id, stop=True)
    raise TimeoutError(f"prediction did not finish within {timeout:g}s")
