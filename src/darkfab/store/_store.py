"""The store: every record darkfab keeps, each change one transaction with its audit event inside it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import NotFoundError, StoreError
from ..redact import redact
from ._aliases import AliasChanges
from ._base import check_name, inserted_id, json_dict, one_of, utc_now, version_ref
from ._blobs import ArtifactBlobs
from ._leases import LeaseQueue
from ._llm_calls import LLMCallLog
from ._monitoring import MonitorLog
from ._predictions import PredictionLog
from ._preferences import PreferenceLog
from ._records import (
    CAMPAIGN_STATUSES,
    FINISHED_STATES,
    TRIAL_STATES,
    CampaignRecord,
    FactoryRecord,
    ModelVersionRecord,
    TrialRecord,
)
from ._schema import aliases, campaigns, events, factories, model_versions, trials
from ._sql import (
    CAMPAIGN_FOR_TRIAL,
    CAMPAIGN_SELECT,
    FACTORY_BY_NAME,
    FACTORY_SELECT,
    HEARTBEAT,
    INSERT_EVALUATION,
    INSERT_MODEL_VERSION,
    INSERT_PROPOSAL,
    INSERT_TRIAL,
    MODEL_VERSION_SELECT,
    NEXT_VERSION,
    TRIAL_BY_ID,
    TRIAL_SELECT,
    TRIAL_STATE,
    UPDATE_CAMPAIGN,
    UPDATE_TRIAL,
    campaign_record,
    factory_record,
    model_version_record,
    trial_record,
)
from ._workers import WorkerRoster

if TYPE_CHECKING:
    from typing import Unpack

_ERROR_IN_EVENT = 500  # characters of a trial's error copied into its event


def _number(x: float | None) -> float | None:
    """A float, or None for a missing one; NaN is missing too (SQLite would store it as NULL anyway)."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


class Store(
    AliasChanges, ArtifactBlobs, LeaseQueue, LLMCallLog, MonitorLog, PredictionLog, PreferenceLog, WorkerRoster
):
    """darkfab's records on SQLite (the default) or PostgreSQL.

    Opening a store resolves its URL (:func:`resolve_store_url`), creates the folder of a SQLite file and
    migrates the schema to the newest revision. Every method that changes something runs as ONE
    transaction and appends its audit event to the hash-chained event log inside that transaction; the
    prediction log (:class:`PredictionLog`) is the exception: predictions are data, not decisions.
    A store may be shared between threads; several processes may open the same database.
    """

    # -- factories ---------------------------------------------------------------------------------

    def ensure_factory(self, name: str, spec: dict[str, Any]) -> FactoryRecord:
        """Create the factory, or update its spec when it changed (event ``factory_created``/``_updated``)."""
        check_name(name, "a factory name")
        spec = json_dict(spec, f"the spec of factory {name!r}")
        now = utc_now()
        with self._write(f"save factory {name!r}") as conn:
            row = conn.execute(FACTORY_BY_NAME, {"b_name": name}).first()
            if row is None:
                new_id = inserted_id(conn.execute(factories.insert(), {"name": name, "spec": spec, "created_at": now}))
                self._event(conn, now, kind="factory_created", reason=f"factory {name!r} declared", factory_id=new_id)
                return FactoryRecord(id=new_id, name=name, spec=spec, created_at=now)
            if row.spec != spec:
                conn.execute(factories.update().where(factories.c.id == row.id).values(spec=spec))
                self._event(conn, now, kind="factory_updated", reason=f"factory {name!r} changed", factory_id=row.id)
            return FactoryRecord(id=row.id, name=name, spec=spec, created_at=row.created_at)

    def get_factory(self, name: str) -> FactoryRecord:
        with self._read(f"read factory {name!r}") as conn:
            row = conn.execute(FACTORY_BY_NAME, {"b_name": name}).first()
            if row is None:
                known = list(conn.execute(sa.select(factories.c.name).order_by(factories.c.name)).scalars())
                raise NotFoundError(
                    f"no factory named {name!r} in the store at {self._shown}; "
                    f"known factories: {', '.join(known) if known else '(none yet)'}; "
                    "fix: check the name, or run the factory file once to create it"
                )
            return factory_record(row)

    def list_factories(self) -> list[FactoryRecord]:
        with self._read("list factories") as conn:
            return [factory_record(r) for r in conn.execute(FACTORY_SELECT.order_by(factories.c.id))]

    def create_campaign(
        self, factory_id: int, *, budget: dict[str, Any], trigger: str, seed: int, data_fingerprint: str
    ) -> CampaignRecord:
        """Start campaign number N+1 of the factory, status ``running`` (event ``campaign_started``)."""
        budget = json_dict(budget, "a campaign budget")
        now = utc_now()
        with self._write("start a campaign") as conn:
            name = self._factory_name(conn, factory_id)
            number = (
                1
                + conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(campaigns.c.number), 0)).where(
                        campaigns.c.factory_id == factory_id
                    )
                ).scalar_one()
            )
            values: dict[str, Any] = {
                "factory_id": factory_id,
                "number": number,
                "status": "running",
                "trigger": trigger,
                "seed": seed,
                "budget": budget,
                "data_fingerprint": data_fingerprint,
                "elapsed_s": 0.0,
                "cpu_s": 0.0,
                "summary": {},
                "created_at": now,
                "finished_at": None,
            }
            new_id = inserted_id(conn.execute(campaigns.insert(), values))
            self._event(
                conn,
                now,
                kind="campaign_started",
                reason=f"campaign {number} of factory {name!r} started (trigger: {trigger})",
                factory_id=factory_id,
                campaign_id=new_id,
                data={
                    "number": number,
                    "trigger": trigger,
                    "seed": seed,
                    "budget": budget,
                    "data_fingerprint": data_fingerprint,
                },
            )
            return CampaignRecord(id=new_id, **values)

    def latest_campaign(self, factory_id: int) -> CampaignRecord | None:
        with self._read("read the latest campaign") as conn:
            row = conn.execute(
                CAMPAIGN_SELECT.where(campaigns.c.factory_id == factory_id).order_by(campaigns.c.number.desc()).limit(1)
            ).first()
            return None if row is None else campaign_record(row)

    def get_campaign(self, campaign_id: int) -> CampaignRecord:
        with self._read(f"read campaign {campaign_id}") as conn:
            return campaign_record(self._campaign_row(conn, campaign_id))

    def list_campaigns(self, factory_id: int) -> list[CampaignRecord]:
        with self._read("list campaigns") as conn:
            rows = conn.execute(
                CAMPAIGN_SELECT.where(campaigns.c.factory_id == factory_id).order_by(campaigns.c.number)
            )
            return [campaign_record(r) for r in rows]

    def update_campaign(self, campaign_id: int, *, elapsed_s: float | None = None, cpu_s: float | None = None) -> None:
        """Record progress (time spent so far). Not a decision, so no event."""
        values = {k: float(v) for k, v in (("elapsed_s", elapsed_s), ("cpu_s", cpu_s)) if v is not None}
        if not values:
            return
        with self._write(f"update campaign {campaign_id}", chain=False) as conn:
            done = conn.execute(UPDATE_CAMPAIGN, {"b_campaign_id": campaign_id, **values})
            if done.rowcount == 0:
                raise NotFoundError(f"no campaign with id {campaign_id} in the store at {self._shown}")

    def finish_campaign(self, campaign_id: int, *, status: str, summary: dict[str, Any], reason: str) -> None:
        """End a running campaign as ``finished``, ``failed`` or ``stopped`` (event ``campaign_finished``)."""
        one_of(status, [s for s in CAMPAIGN_STATUSES if s != "running"], "the status of a finished campaign")
        summary = json_dict(summary, "a campaign summary")
        now = utc_now()
        with self._write(f"finish campaign {campaign_id}") as conn:
            row = self._campaign_row(conn, campaign_id)
            if row.status != "running":
                since = f" since {row.finished_at:%Y-%m-%d %H:%M:%S} UTC" if row.finished_at else ""
                raise StoreError(
                    f"campaign {row.number} (id {campaign_id}) is already {row.status}{since}; only a running "
                    "campaign can finish; fix: start a new campaign"
                )
            conn.execute(
                UPDATE_CAMPAIGN,
                {"b_campaign_id": campaign_id, "status": status, "summary": summary, "finished_at": now},
            )
            self._event(
                conn,
                now,
                kind="campaign_finished",
                reason=reason,
                factory_id=row.factory_id,
                campaign_id=campaign_id,
                data={"number": row.number, "status": status, "summary": summary},
            )

    # -- proposals and trials ----------------------------------------------------------------------

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
    ) -> TrialRecord:
        """Record a proposal and its trial (``queued``, number N+1 in the campaign); event ``proposed``.

        With ``start_as`` (a worker that has a free slot) the trial is also started, leased to that worker,
        in the same transaction, as :meth:`start_trial` would: state ``running``, attempt 1, event ``started``.
        """
        params = json_dict(params, f"the params proposed by {proposer!r}")
        parent_ids = tuple(parents)
        if not all(isinstance(p, int) and not isinstance(p, bool) for p in parent_ids):
            raise StoreError(f"parents must be trial ids (integers), got {parents!r}")
        now = utc_now()
        with self._write("add a trial") as conn:
            campaign = conn.execute(CAMPAIGN_FOR_TRIAL, {"b_campaign_id": campaign_id}).first()
            if campaign is None:
                raise NotFoundError(f"no campaign with id {campaign_id} in the store at {self._shown}")
            if campaign.status != "running":
                raise StoreError(
                    f"campaign {campaign.number} (id {campaign_id}) is {campaign.status}; trials can only be "
                    "added to a running campaign; fix: start a new campaign"
                )
            number = campaign.next_number
            proposal_insert = conn.execute(
                INSERT_PROPOSAL,
                {
                    "campaign_id": campaign_id,
                    "proposer": proposer,
                    "trainer": trainer,
                    "params": params,
                    "reason": reason,
                    "key": key,
                    "parents": list(parent_ids),
                    "created_at": now,
                },
            )
            proposal_id = inserted_id(proposal_insert)
            trial_insert = conn.execute(
                INSERT_TRIAL,
                {
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
                },
            )
            trial_id = inserted_id(trial_insert)
            proposed = self._event(
                conn,
                now,
                kind="proposed",
                reason=reason,
                head=campaign.chain_head,
                factory_id=campaign.factory_id,
                campaign_id=campaign_id,
                trial_id=trial_id,
                data={
                    "number": number,
                    "proposer": proposer,
                    "trainer": trainer,
                    "params": params,
                    "key": key,
                    "parents": list(parent_ids),
                },
            )
            if start_as:
                self._event(
                    conn,
                    now,
                    kind="started",
                    head=proposed.hash,
                    reason=f"attempt 1 on worker {start_as!r}",
                    factory_id=campaign.factory_id,
                    campaign_id=campaign_id,
                    trial_id=trial_id,
                    data={"number": number, "attempt": 1, "worker": start_as, "lease_owner": start_as},
                )
        return TrialRecord(
            id=trial_id,
            proposal_id=proposal_id,
            campaign_id=campaign_id,
            factory_id=campaign.factory_id,
            number=number,
            state="running" if start_as else "queued",
            attempt=1 if start_as else 0,
            worker=start_as or "",
            seed=seed,
            created_at=now,
            started_at=now if start_as else None,
            finished_at=None,
            heartbeat_at=now if start_as else None,
            lease_owner=start_as or "",
            lease_expires_at=now + timedelta(seconds=lease_s) if start_as and lease_s > 0 else None,
            error=None,
            failure_kind=None,
            log_tail="",
            resources={},
            intermediate={},
            artifact_path=None,
            proposer=proposer,
            trainer=trainer,
            params=params,
            reason=reason,
            key=key,
            parents=parent_ids,
            value=None,
            metrics=None,
            reward=None,
            feasible=None,
            breakdown=None,
        )

    def _trial_state(self, conn: Connection, trial_id: int) -> sa.Row[Unpack[tuple[Any, ...]]]:
        row = conn.execute(TRIAL_STATE, {"b_trial_id": trial_id}).first()
        if row is None:
            raise NotFoundError(f"no trial with id {trial_id} in the store at {self._shown}")
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
        now = utc_now()
        with self._write(f"start trial {trial_id}") as conn:
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
            self._event(
                conn,
                now,
                kind="started",
                head=row.chain_head,
                reason=f"attempt {attempt} on worker {worker!r}",
                factory_id=row.factory_id,
                campaign_id=row.campaign_id,
                trial_id=trial_id,
                data={"number": row.number, "attempt": attempt, "worker": worker, "lease_owner": lease_owner},
            )

    def heartbeat(self, trial_ids: list[int], *, lease_s: float) -> None:
        """Mark running trials alive now and extend their leases by ``lease_s``. Not a decision: no event."""
        ids = list(trial_ids)
        if not ids:
            return
        now = utc_now()
        with self._write("record a heartbeat", chain=False) as conn:
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
        secrets = self._secrets()  # a trial's error and log may carry what its code could read: mask it
        error = None if error is None else redact(error, secrets)
        log_tail = redact(log_tail, secrets)
        evaluated = any(x is not None for x in (value, metrics, reward, feasible, breakdown))
        trial_values: dict[str, Any] = {
            "b_trial_id": trial_id,
            "state": state,
            "error": error,
            "failure_kind": failure_kind,
            "log_tail": log_tail,
            "artifact_path": artifact_path,
            "lease_expires_at": None,
        }
        if resources is not None:
            trial_values["resources"] = json_dict(resources, f"the resources of trial {trial_id}")
        if intermediate is not None:
            steps = json_dict({str(k): v for k, v in dict(intermediate).items()}, "intermediate scores")
            trial_values["intermediate"] = steps
        evaluation: dict[str, Any] = {}
        if evaluated:
            evaluation = {
                "trial_id": trial_id,
                "value": _number(value),
                "metrics": json_dict(metrics or {}, f"the metrics of trial {trial_id}"),
                "reward": _number(reward),
                "feasible": None if feasible is None else bool(feasible),
                "breakdown": json_dict(breakdown or {}, f"the reward breakdown of trial {trial_id}"),
            }
        now = utc_now()
        trial_values["finished_at"] = now
        with self._write(f"finish trial {trial_id}") as conn:
            row = self._trial_state(conn, trial_id)
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
            conn.execute(UPDATE_TRIAL, trial_values)
            if evaluated:
                conn.execute(INSERT_EVALUATION, evaluation)
            self._event(
                conn,
                now,
                kind=state,
                head=row.chain_head,
                reason=reason or f"trial {row.number} {state}",
                factory_id=row.factory_id,
                campaign_id=row.campaign_id,
                trial_id=trial_id,
                data={
                    "number": row.number,
                    "attempt": row.attempt,
                    "value": evaluation["value"] if evaluated else None,
                    "reward": evaluation["reward"] if evaluated else None,
                    "feasible": evaluation["feasible"] if evaluated else None,
                    "failure_kind": failure_kind,
                    "error": None if error is None else error[:_ERROR_IN_EVENT],
                },
            )

    def requeue_interrupted(
        self, campaign_id: int, *, reason: str, only: tuple[int, ...] | None = None, expired_only: bool = False
    ) -> list[TrialRecord]:
        """Put the campaign's ``running`` trials (left by a process that died) back to ``queued``.

        Their attempt count is kept; each gets an event ``requeued``. Returns them as they are now.
        With ``only``, just those trials; with ``expired_only``, only while their lease is expired (checked in the
        same transaction, so a heartbeat that arrived meanwhile keeps the trial with its worker).
        """
        now = utc_now()
        with self._write(f"requeue the trials of campaign {campaign_id}") as conn:
            campaign = self._campaign_row(conn, campaign_id)
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
                self._event(
                    conn,
                    now,
                    kind="requeued",
                    reason=reason,
                    factory_id=campaign.factory_id,
                    campaign_id=campaign_id,
                    trial_id=r.id,
                    data={"number": r.number, "attempt": r.attempt, "worker": r.worker},
                )
            return [
                trial_record(t) for t in conn.execute(TRIAL_SELECT.where(trials.c.id.in_(ids)).order_by(trials.c.id))
            ]

    def get_trial(self, trial_id: int) -> TrialRecord:
        with self._read(f"read trial {trial_id}") as conn:
            row = conn.execute(TRIAL_BY_ID, {"b_trial_id": trial_id}).first()
        if row is None:
            raise NotFoundError(f"no trial with id {trial_id} in the store at {self._shown}")
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
        with self._read("list trials") as conn:
            return [trial_record(r) for r in conn.execute(query.order_by(trials.c.id))]

    def count_trials(self, campaign_id: int) -> dict[str, int]:
        """How many trials of the campaign are in each state; every state is present."""
        counts = dict.fromkeys(TRIAL_STATES, 0)
        with self._read("count trials") as conn:
            rows = conn.execute(
                sa.select(trials.c.state, sa.func.count())
                .where(trials.c.campaign_id == campaign_id)
                .group_by(trials.c.state)
            )
            for state, n in rows:
                counts[state] = n
        return counts

    # -- model versions and aliases ----------------------------------------------------------------

    def add_model_version(
        self,
        factory_id: int,
        *,
        artifact_hash: str,
        artifact_path: str,
        trial_id: int | None,
        trainer: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        lineage: dict[str, Any],
        reason: str,
        aliases: tuple[str, ...] = (),
    ) -> ModelVersionRecord:
        """Register version N+1 of the factory (event ``registered``), then point ``aliases`` at it."""
        params = json_dict(params, "a model version's params")
        metrics = json_dict(metrics, "a model version's metrics")
        lineage = json_dict(lineage, "a model version's lineage")
        for alias in aliases:
            self._check_alias(alias)
        now = utc_now()
        with self._write("register a model version") as conn:
            name = self._factory_name(conn, factory_id)
            if (
                trial_id is not None
                and conn.execute(sa.select(trials.c.id).where(trials.c.id == trial_id)).first() is None
            ):
                raise NotFoundError(f"cannot register a model of factory {name!r} from trial {trial_id}: no such trial")
            version = conn.execute(NEXT_VERSION, {"b_factory_id": factory_id}).scalar_one()
            values: dict[str, Any] = {
                "factory_id": factory_id,
                "version": version,
                "artifact_hash": artifact_hash,
                "artifact_path": artifact_path,
                "trial_id": trial_id,
                "trainer": trainer,
                "params": params,
                "metrics": metrics,
                "lineage": lineage,
                "created_at": now,
            }
            new_id = inserted_id(conn.execute(INSERT_MODEL_VERSION, values))
            self._event(
                conn,
                now,
                kind="registered",
                reason=reason,
                factory_id=factory_id,
                trial_id=trial_id,
                data={"version": version, "artifact_hash": artifact_hash, "trainer": trainer},
            )
            for alias in aliases:
                self._move_alias(conn, now, factory_id, alias, version, reason=reason)
        return ModelVersionRecord(id=new_id, aliases=tuple(sorted(set(aliases))), **values)

    @staticmethod
    def _check_alias(alias: Any) -> str:
        check_name(alias, "an alias")
        if alias.strip().isdigit():
            raise StoreError(
                f"alias {alias!r} is a number, and numbers name versions; fix: use a name such as 'champion'"
            )
        return alias

    def set_alias(self, factory_id: int, alias: str, version: int, *, reason: str) -> None:
        """Point ``alias`` at ``version`` (event ``alias_set`` naming the previous holder, if any)."""
        self._check_alias(alias)
        now = utc_now()
        with self._write(f"set alias {alias!r}") as conn:
            self._move_alias(conn, now, factory_id, alias, version, reason=reason)

    def _move_alias(
        self, conn: Connection, now: datetime, factory_id: int, alias: str, version: int, *, reason: str
    ) -> None:
        exists = conn.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.factory_id == factory_id, model_versions.c.version == version
            )
        ).first()
        if exists is None:
            raise self._no_version(conn, factory_id, version)
        where = (aliases.c.factory_id == factory_id, aliases.c.alias == alias)
        previous = conn.execute(sa.select(aliases.c.version).where(*where)).scalar()
        if previous == version:
            return
        if previous is None:
            conn.execute(aliases.insert().values(factory_id=factory_id, alias=alias, version=version))
        else:
            conn.execute(aliases.update().where(*where).values(version=version))
        self._event(
            conn,
            now,
            kind="alias_set",
            reason=reason,
            factory_id=factory_id,
            data={"alias": alias, "version": version, "previous": previous},
        )

    def _no_version(self, conn: Connection, factory_id: int, ref: int | str) -> NotFoundError:
        name = self._factory_name(conn, factory_id)
        versions = list(
            conn.execute(
                sa.select(model_versions.c.version)
                .where(model_versions.c.factory_id == factory_id)
                .order_by(model_versions.c.version)
            ).scalars()
        )
        held = conn.execute(
            sa.select(aliases.c.alias, aliases.c.version)
            .where(aliases.c.factory_id == factory_id)
            .order_by(aliases.c.alias)
        ).all()
        what = f"version {ref}" if isinstance(ref, int) else f"alias {ref!r}"
        if not versions:
            last_gate = conn.execute(
                sa.select(events.c.reason)
                .where(events.c.factory_id == factory_id, events.c.kind == "gate_verdict")
                .order_by(events.c.id.desc())
                .limit(1)
            ).scalar()
            said = f" (the last gate: {last_gate})" if last_gate else ""
            return NotFoundError(
                f"factory {name!r} has no {what}: no model version is registered yet{said}; "
                "fix: run a campaign until a model passes the gate"
            )
        shown_aliases = ", ".join(f"{a} -> {v}" for a, v in held) or "(none)"
        return NotFoundError(
            f"factory {name!r} has no {what}; versions: {', '.join(map(str, versions))}; "
            f"aliases: {shown_aliases}; fix: use one of those"
        )

    def get_model_version(self, factory_id: int, ref: int | str) -> ModelVersionRecord:
        """A version by number (``3`` or ``"3"``) or by alias (``"champion"``)."""
        ref = version_ref(ref)
        with self._read("read a model version") as conn:
            if isinstance(ref, int):
                version: int | None = ref
            else:
                version = conn.execute(
                    sa.select(aliases.c.version).where(aliases.c.factory_id == factory_id, aliases.c.alias == ref)
                ).scalar()
            row = None
            if version is not None:
                row = conn.execute(
                    MODEL_VERSION_SELECT.where(
                        model_versions.c.factory_id == factory_id, model_versions.c.version == version
                    )
                ).first()
            if row is None:
                raise self._no_version(conn, factory_id, ref)
            held = conn.execute(
                sa.select(aliases.c.alias)
                .where(aliases.c.factory_id == factory_id, aliases.c.version == row.version)
                .order_by(aliases.c.alias)
            ).scalars()
            return model_version_record(row, tuple(held))

    def list_model_versions(self, factory_id: int) -> list[ModelVersionRecord]:
        """Every version of the factory, oldest first, each with the aliases that point at it now."""
        with self._read("list model versions") as conn:
            held: dict[int, list[str]] = {}
            for alias, version in conn.execute(
                sa.select(aliases.c.alias, aliases.c.version)
                .where(aliases.c.factory_id == factory_id)
                .order_by(aliases.c.alias)
            ):
                held.setdefault(version, []).append(alias)
            rows = conn.execute(
                MODEL_VERSION_SELECT.where(model_versions.c.factory_id == factory_id).order_by(model_versions.c.version)
            )
            return [model_version_record(r, tuple(held.get(r.version, ()))) for r in rows]
