"""Proposals and their trials: adding, starting, heartbeats, finishing with the evaluation, requeueing, reading."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, StoreError
from ..events import EventKind
from ..patch import CodePatch
from ..redact import redact
from ._base import Repository, inserted_id, json_dict, one_of
from ._records import FINISHED_STATES, TRIAL_STATES, EventRecord, TrialRecord
from ._schema import campaigns, trials
from ._sql import (
    CAMPAIGN_FOR_TRIAL,
    HEARTBEAT,
    INSERT_EVALUATION,
    INSERT_PROPOSAL,
    INSERT_TRIAL,
    TRIAL_BY_ID,
    TRIAL_SELECT,
    TRIAL_STATE,
    UPDATE_TRIAL,
    trial_record,
)

if TYPE_CHECKING:
    from typing import Unpack

_ERROR_IN_EVENT = 500  # characters of a trial's error copied into its event
# what a trial that has not finished holds: no end, no error, no artifact, no evaluation
_UNFINISHED: dict[str, Any] = dict.fromkeys(
    ("finished_at", "error", "failure_kind", "artifact_path", "value", "metrics", "reward", "feasible", "breakdown")
)


def _number(x: float | None) -> float | None:
    """A float, or None for a missing one; NaN is missing too (SQLite would store it as NULL anyway)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _new_trial(
    proposal_id: int, campaign_id: int, number: int, *, seed: int, now: datetime, start_as: str | None, lease_s: float
) -> dict[str, Any]:
    """The row of a new trial: ``queued``, or running on ``start_as`` (attempt 1, leased for ``lease_s``)."""
    return {
        "proposal_id": proposal_id,
        "campaign_id": campaign_id,
        "number": number,
        "state": "running" if start_as else "queued",
        "attempt": 1 if start_as else 0,
        "worker": start_as or "",
        "seed": seed,
        "created_at": now,
        "started_at": now if start_as else None,
        "heartbeat_at": now if start_as else None,
        "lease_owner": start_as or "",
        "lease_expires_at": now + timedelta(seconds=lease_s) if start_as and lease_s > 0 else None,
        "log_tail": "",
        "resources": {},
        "intermediate": {},
    }


def _evaluation(
    trial_id: int,
    *,
    value: float | None,
    metrics: dict[str, Any] | None,
    reward: float | None,
    feasible: bool | None,
    breakdown: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The evaluation row of a finished trial; None when no figure is given (a trial that never ran)."""
    if all(x is None for x in (value, metrics, reward, feasible, breakdown)):
        return None
    return {
        "trial_id": trial_id,
        "value": _number(value),
        "metrics": json_dict(metrics or {}, f"the metrics of trial {trial_id}"),
        "reward": _number(reward),
        "feasible": None if feasible is None else bool(feasible),
        "breakdown": json_dict(breakdown or {}, f"the reward breakdown of trial {trial_id}"),
    }


def _hyperparams(params: dict[str, Any], proposer: str) -> dict[str, Any]:
    """``params`` unless a code edit hides in them: those keys were how a code edit travelled before 0011."""
    hidden = sorted(k for k in params if k in ("_patch", "_diff"))
    if hidden:
        raise StoreError(
            f"the params proposed by {proposer!r} hold {hidden}: params are hyperparameters only; fix: pass the "
            "code edit as add_trial(patch=darkfab.patch.CodePatch(edits, diff))"
        )
    return params


def _code_columns(patch: CodePatch | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A proposal's code edit as its two columns (both NULL without one), and as its ``proposed`` event shows it."""
    if patch is None:
        return {"patch": None, "diff": None}, {}
    if not isinstance(patch, CodePatch):
        raise StoreError(f"patch must be a darkfab.patch.CodePatch or None, got {type(patch).__name__}")
    return {"patch": patch.edit_list(), "diff": patch.diff}, {"patch": patch.to_json()}


@dataclass(frozen=True)
class _TrialRef:
    """Which trial an event is about: its factory, campaign and id, and its number within the campaign."""

    factory_id: int
    campaign_id: int
    trial_id: int
    number: int


class Trials(Repository):
    """The ``proposals``, ``trials`` and ``evaluations`` tables; a state change is one transaction and its event."""

    def add_trial(
        self,
        campaign_id: int,
        *,
        proposer: str,
        trainer: str,
        params: dict[str, Any],
        reason: str,
        key: str = "",
        parents: tuple[int, ...] = (),
        seed: int = 0,
        start_as: str | None = None,
        lease_s: float = 0,
        patch: CodePatch | None = None,
    ) -> TrialRecord:
        """Record a proposal and its trial (``queued``, number N+1 in the campaign); event ``proposed``.

        ``patch`` is a code-edit proposal's change to its script; it is kept in its own columns, and named in
        the ``proposed`` event, never in ``params``.

        With ``start_as`` (a worker that has a free slot) the trial is also started, leased to that worker,
        in the same transaction, as :meth:`start_trial` would: state ``running``, attempt 1, event ``started``.
        """
        params = _hyperparams(json_dict(params, f"the params proposed by {proposer!r}"), proposer)
        columns, code = _code_columns(patch)
        parent_ids = tuple(parents)
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in parent_ids):
            raise StoreError(f"parents must be trial ids (integers), got {parents!r}")
        now = self._base.clock()
        proposal: dict[str, Any] = {
            "campaign_id": campaign_id,
            "proposer": proposer,
            "trainer": trainer,
            "params": params,
            "reason": reason,
            "key": key,
            "parents": list(parent_ids),
            "created_at": now,
            **columns,
        }
        with self._base._write("add a trial") as conn:
            campaign = self._open_campaign(conn, campaign_id)
            proposal_id = inserted_id(conn.execute(INSERT_PROPOSAL, proposal))
            values = _new_trial(
                proposal_id, campaign_id, campaign.next_number, seed=seed, now=now, start_as=start_as, lease_s=lease_s
            )
            trial_id = inserted_id(conn.execute(INSERT_TRIAL, values))
            trial = _TrialRef(campaign.factory_id, campaign_id, trial_id, values["number"])
            proposed = self._trial_event(
                conn,
                now,
                trial,
                kind=EventKind.PROPOSED,
                reason=reason,
                head=campaign.chain_head,
                proposer=proposer,
                trainer=trainer,
                params=params,
                key=key,
                parents=list(parent_ids),
                **code,
            )
            if start_as:
                self._started(conn, now, trial, attempt=1, worker=start_as, lease_owner=start_as, head=proposed.hash)
        proposed_by: dict[str, Any] = {
            "proposer": proposer,
            "trainer": trainer,
            "params": params,
            "reason": reason,
            "key": key,
        }
        return TrialRecord(
            id=trial_id,
            factory_id=campaign.factory_id,
            parents=parent_ids,
            patch=patch,
            **proposed_by,
            **_UNFINISHED,
            **values,
        )

    def _open_campaign(self, conn: Connection, campaign_id: int) -> sa.Row[Unpack[tuple[Any, ...]]]:
        """The campaign a trial is added to (with its next trial number and the chain head); it must be running."""
        campaign = conn.execute(CAMPAIGN_FOR_TRIAL, {"b_campaign_id": campaign_id}).first()
        if campaign is None:
            raise NotFoundError(f"no campaign with id {campaign_id} in the store at {self._base._shown}")
        if campaign.status != "running":
            raise StoreError(
                f"campaign {campaign.number} (id {campaign_id}) is {campaign.status}; trials can only be "
                "added to a running campaign; fix: start a new campaign"
            )
        return campaign

    def _trial_state(self, conn: Connection, trial_id: int) -> sa.Row[Unpack[tuple[Any, ...]]]:
        row = conn.execute(TRIAL_STATE, {"b_trial_id": trial_id}).first()
        if row is None:
            raise NotFoundError(f"no trial with id {trial_id} in the store at {self._base._shown}")
        return row

    def _already_finished(self, trial_id: int, row: sa.Row[Any], doing: str) -> StoreError:
        when = f" since {row.finished_at:%Y-%m-%d %H:%M:%S} UTC" if row.finished_at else ""
        return StoreError(
            f"cannot {doing} trial {trial_id} (number {row.number} of campaign {row.campaign_id}): it is already "
            f"{row.state}{when}, and a finished trial is never run twice; fix: add a new trial to try it again"
        )

    def start_trial(self, trial_id: int, *, worker: str, lease_owner: str = "", lease_s: float = 0) -> None:
        """Mark a trial running on ``worker``: attempt += 1, event ``started``.

        A running trial may be started again (a retry after an infrastructure fault) unless another owner
        holds a lease on it that has not expired. ``lease_s`` > 0 sets a lease that heartbeats extend.
        """
        now = self._base.clock()
        with self._base._write(f"start trial {trial_id}") as conn:
            row = self._trial_state(conn, trial_id)
            if row.state in FINISHED_STATES:
                raise self._already_finished(trial_id, row, "start")
            if (
                row.state == "running"
                and row.lease_owner
                and row.lease_owner != lease_owner
                and row.lease_expires_at is not None
                and row.lease_expires_at > now
            ):
                raise StoreError(
                    f"cannot start trial {trial_id} for {lease_owner or worker!r}: {row.lease_owner!r} holds its "
                    f"lease until {row.lease_expires_at:%H:%M:%S} UTC; fix: wait for the lease to expire, or let "
                    "its holder finish it"
                )
            attempt = row.attempt + 1
            conn.execute(
                UPDATE_TRIAL,
                {
                    "b_trial_id": trial_id,
                    "state": "running",
                    "attempt": attempt,
                    "worker": worker,
                    "started_at": now,
                    "heartbeat_at": now,
                    "lease_owner": lease_owner,
                    "lease_expires_at": now + timedelta(seconds=lease_s) if lease_s > 0 else None,
                },
            )
            trial = _TrialRef(row.factory_id, row.campaign_id, trial_id, row.number)
            self._started(
                conn, now, trial, attempt=attempt, worker=worker, lease_owner=lease_owner, head=row.chain_head
            )

    def _started(
        self,
        conn: Connection,
        now: datetime,
        trial: _TrialRef,
        *,
        attempt: int,
        worker: str,
        lease_owner: str,
        head: str,
    ) -> None:
        reason = f"attempt {attempt} on worker {worker!r}"
        self._trial_event(
            conn,
            now,
            trial,
            kind=EventKind.TRIAL_STARTED,
            reason=reason,
            head=head,
            attempt=attempt,
            worker=worker,
            lease_owner=lease_owner,
        )

    def _trial_event(
        self,
        conn: Connection,
        now: datetime,
        trial: _TrialRef,
        *,
        kind: EventKind,
        reason: str,
        head: str | None | Literal[False] = False,
        **data: Any,
    ) -> EventRecord:
        """Append the event of one trial: its factory, campaign and id, and its number first in the data."""
        return self._base._event(
            conn,
            now,
            kind=kind,
            reason=reason,
            head=head,
            factory_id=trial.factory_id,
            campaign_id=trial.campaign_id,
            trial_id=trial.trial_id,
            data={"number": trial.number, **data},
        )

    def heartbeat(self, trial_ids: list[int], *, lease_s: float) -> None:
        """Mark running trials alive now and extend their leases by ``lease_s``. Not a decision: no event."""
        ids = list(trial_ids)
        if not ids:
            return
        now = self._base.clock()
        with self._base._write("record a heartbeat", chain=False) as conn:
            expires = now + timedelta(seconds=lease_s) if lease_s > 0 else None
            conn.execute(HEARTBEAT, {"b_trial_ids": ids, "b_now": now, "b_expires": expires})

    def finish_trial(
        self,
        trial_id: int,
        *,
        state: str,
        value: float | None = None,
        metrics: dict[str, Any] | None = None,
        reward: float | None = None,
        feasible: bool | None = None,
        breakdown: dict[str, Any] | None = None,
        error: str | None = None,
        failure_kind: str | None = None,
        log_tail: str = "",
        resources: dict[str, Any] | None = None,
        intermediate: dict[int, float] | None = None,
        artifact_path: str | None = None,
        reason: str = "",
        lease_owner: str | None = None,
    ) -> None:
        """End a trial: its row, its evaluation (when any figure is given) and an event named after the state.

        ``completed`` and ``pruned`` need a running trial; ``failed`` and ``cancelled`` also end a queued one.
        Finishing a trial that is already finished raises StoreError. With ``lease_owner``, the trial must still
        be leased to that owner (a worker whose lease was reclaimed cannot finish the trial afterwards).
        """
        one_of(state, FINISHED_STATES, "the state of a finished trial")
        secrets = self._base._secrets()  # a trial's error and log may carry what its code could read: mask it
        error = None if error is None else redact(error, secrets)
        trial_values: dict[str, Any] = {
            "b_trial_id": trial_id,
            "state": state,
            "error": error,
            "failure_kind": failure_kind,
            "log_tail": redact(log_tail, secrets),
            "artifact_path": artifact_path,
            "lease_expires_at": None,
        }
        if resources is not None:
            trial_values["resources"] = json_dict(resources, f"the resources of trial {trial_id}")
        if intermediate is not None:
            steps = json_dict({str(k): v for k, v in dict(intermediate).items()}, "intermediate scores")
            trial_values["intermediate"] = steps
        evaluation = _evaluation(
            trial_id, value=value, metrics=metrics, reward=reward, feasible=feasible, breakdown=breakdown
        )
        now = self._base.clock()
        trial_values["finished_at"] = now
        with self._base._write(f"finish trial {trial_id}") as conn:
            row = self._trial_state(conn, trial_id)
            self._check_finish(trial_id, row, state=state, lease_owner=lease_owner)
            conn.execute(UPDATE_TRIAL, trial_values)
            if evaluation is not None:
                conn.execute(INSERT_EVALUATION, evaluation)
            self._trial_event(
                conn,
                now,
                _TrialRef(row.factory_id, row.campaign_id, trial_id, row.number),
                kind=EventKind(state),
                head=row.chain_head,
                reason=reason or f"trial {row.number} {state}",
                attempt=row.attempt,
                **{k: None if evaluation is None else evaluation[k] for k in ("value", "reward", "feasible")},
                failure_kind=failure_kind,
                error=None if error is None else error[:_ERROR_IN_EVENT],
            )

    def _check_finish(self, trial_id: int, row: sa.Row[Any], *, state: str, lease_owner: str | None) -> None:
        """StoreError unless the trial may end ``state`` now (for ``lease_owner``, when given)."""
        if row.state in FINISHED_STATES:
            raise self._already_finished(trial_id, row, f"finish ({state})")
        if lease_owner is not None and (row.state != "running" or row.lease_owner != lease_owner):
            raise StoreError(
                f"cannot finish trial {trial_id} for {lease_owner!r}: its lease now belongs to "
                f"{row.lease_owner or 'nobody'!r} (state {row.state}); the trial was reclaimed after a silence "
                "longer than the lease, and its new holder will finish it"
            )
        if state in ("completed", "pruned") and row.state != "running":
            raise StoreError(
                f"trial {trial_id} is {row.state}; only a running trial can end {state}; "
                "fix: call start_trial before running it"
            )

    def requeue_interrupted(
        self, campaign_id: int, *, reason: str, only: tuple[int, ...] | None = None, expired_only: bool = False
    ) -> list[TrialRecord]:
        """Put the campaign's ``running`` trials (left by a process that died) back to ``queued``.

        Their attempt count is kept; each gets an event ``requeued``. Returns them as they are now.
        With ``only``, just those trials; with ``expired_only``, only while their lease is expired (checked in the
        same transaction, so a heartbeat that arrived meanwhile keeps the trial with its worker).
        """
        now = self._base.clock()
        with self._base._write(f"requeue the trials of campaign {campaign_id}") as conn:
            campaign = self._base._campaign_row(conn, campaign_id)
            where = [trials.c.campaign_id == campaign_id, trials.c.state == "running"]
            if only is not None:
                where.append(trials.c.id.in_(only))
            if expired_only:
                where.append(trials.c.lease_expires_at < now)
            running = conn.execute(
                sa.select(trials.c.id, trials.c.number, trials.c.attempt, trials.c.worker)
                .where(*where)
                .order_by(trials.c.id)
            ).all()
            if not running:
                return []
            ids = [r.id for r in running]
            conn.execute(
                trials.update()
                .where(trials.c.id.in_(ids))
                .values(state="queued", worker="", lease_owner="", lease_expires_at=None)
            )
            for r in running:
                trial = _TrialRef(campaign.factory_id, campaign_id, r.id, r.number)
                self._trial_event(
                    conn, now, trial, kind=EventKind.TRIAL_REQUEUED, reason=reason, attempt=r.attempt, worker=r.worker
                )
            return [
                trial_record(t) for t in conn.execute(TRIAL_SELECT.where(trials.c.id.in_(ids)).order_by(trials.c.id))
            ]

    def get_trial(self, trial_id: int) -> TrialRecord:
        with self._base._read(f"read trial {trial_id}") as conn:
            row = conn.execute(TRIAL_BY_ID, {"b_trial_id": trial_id}).first()
        if row is None:
            raise NotFoundError(f"no trial with id {trial_id} in the store at {self._base._shown}")
        return trial_record(row)

    def list_trials(
        self,
        *,
        factory_id: int | None = None,
        campaign_id: int | None = None,
        states: tuple[str, ...] | None = None,
    ) -> list[TrialRecord]:
        """Trials ordered by id, filtered by factory, campaign and states (each optional)."""
        query = TRIAL_SELECT
        if factory_id is not None:
            query = query.where(campaigns.c.factory_id == factory_id)
        if campaign_id is not None:
            query = query.where(trials.c.campaign_id == campaign_id)
        if states is not None:
            for s in states:
                one_of(s, TRIAL_STATES, "a trial state")
            query = query.where(trials.c.state.in_(list(states)))
        with self._base._read("list trials") as conn:
            return [trial_record(r) for r in conn.execute(query.order_by(trials.c.id))]

    def count_trials(self, campaign_id: int) -> dict[str, int]:
        """How many trials of the campaign are in each state; every state is present."""
        counts = dict.fromkeys(TRIAL_STATES, 0)
        with self._base._read("count trials") as conn:
            rows = conn.execute(
                sa.select(trials.c.state, sa.func.count())
                .where(trials.c.campaign_id == campaign_id)
                .group_by(trials.c.state)
            )
            for state, n in rows:
                counts[state] = n
        return counts
