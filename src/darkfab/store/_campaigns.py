"""Factories and their campaigns: declaring a factory, starting, progressing and finishing its campaigns."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import NotFoundError, StoreError
from ..events import EventKind
from ._base import Repository, check_name, inserted_id, json_dict, one_of
from ._records import CAMPAIGN_STATUSES, CampaignRecord, FactoryRecord
from ._schema import campaigns, factories
from ._sql import CAMPAIGN_SELECT, FACTORY_BY_NAME, FACTORY_SELECT, UPDATE_CAMPAIGN, campaign_record, factory_record


class Campaigns(Repository):
    """The ``factories`` and ``campaigns`` tables; each change one transaction with its event."""

    def ensure_factory(self, name: str, spec: dict[str, Any]) -> FactoryRecord:
        """Create the factory, or update its spec when it changed (event ``factory_created``/``_updated``)."""
        check_name(name, "a factory name")
        spec = json_dict(spec, f"the spec of factory {name!r}")
        now = self._base.clock()
        with self._base._write(f"save factory {name!r}") as conn:
            row = conn.execute(FACTORY_BY_NAME, {"b_name": name}).first()
            if row is None:
                new_id = inserted_id(conn.execute(factories.insert(), {"name": name, "spec": spec, "created_at": now}))
                self._base._event(
                    conn, now, kind=EventKind.FACTORY_CREATED, reason=f"factory {name!r} declared", factory_id=new_id
                )
                return FactoryRecord(id=new_id, name=name, spec=spec, created_at=now)
            if row.spec != spec:
                conn.execute(factories.update().where(factories.c.id == row.id).values(spec=spec))
                self._base._event(
                    conn, now, kind=EventKind.FACTORY_UPDATED, reason=f"factory {name!r} changed", factory_id=row.id
                )
            return FactoryRecord(id=row.id, name=name, spec=spec, created_at=row.created_at)

    def get_factory(self, name: str) -> FactoryRecord:
        with self._base._read(f"read factory {name!r}") as conn:
            row = conn.execute(FACTORY_BY_NAME, {"b_name": name}).first()
            if row is None:
                known = list(conn.execute(sa.select(factories.c.name).order_by(factories.c.name)).scalars())
                raise NotFoundError(
                    f"no factory named {name!r} in the store at {self._base._shown}; "
                    f"known factories: {', '.join(known) if known else '(none yet)'}; "
                    "fix: check the name, or run the factory file once to create it"
                )
            return factory_record(row)

    def list_factories(self) -> list[FactoryRecord]:
        with self._base._read("list factories") as conn:
            return [factory_record(r) for r in conn.execute(FACTORY_SELECT.order_by(factories.c.id))]

    def create_campaign(
        self, factory_id: int, *, budget: dict[str, Any], trigger: str, seed: int, data_fingerprint: str
    ) -> CampaignRecord:
        """Start campaign number N+1 of the factory, status ``running`` (event ``campaign_started``)."""
        budget = json_dict(budget, "a campaign budget")
        now = self._base.clock()
        with self._base._write("start a campaign") as conn:
            name = self._base._factory_name(conn, factory_id)
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
            self._base._event(
                conn,
                now,
                kind=EventKind.CAMPAIGN_STARTED,
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
        with self._base._read("read the latest campaign") as conn:
            row = conn.execute(
                CAMPAIGN_SELECT.where(campaigns.c.factory_id == factory_id).order_by(campaigns.c.number.desc()).limit(1)
            ).first()
            return None if row is None else campaign_record(row)

    def get_campaign(self, campaign_id: int) -> CampaignRecord:
        with self._base._read(f"read campaign {campaign_id}") as conn:
            return campaign_record(self._base._campaign_row(conn, campaign_id))

    def list_campaigns(self, factory_id: int) -> list[CampaignRecord]:
        with self._base._read("list campaigns") as conn:
            rows = conn.execute(
                CAMPAIGN_SELECT.where(campaigns.c.factory_id == factory_id).order_by(campaigns.c.number)
            )
            return [campaign_record(r) for r in rows]

    def update_campaign(self, campaign_id: int, *, elapsed_s: float | None = None, cpu_s: float | None = None) -> None:
        """Record progress (time spent so far). Not a decision, so no event."""
        values = {k: float(v) for k, v in (("elapsed_s", elapsed_s), ("cpu_s", cpu_s)) if v is not None}
        if not values:
            return
        with self._base._write(f"update campaign {campaign_id}", chain=False) as conn:
            done = conn.execute(UPDATE_CAMPAIGN, {"b_campaign_id": campaign_id, **values})
            if done.rowcount == 0:
                raise NotFoundError(f"no campaign with id {campaign_id} in the store at {self._base._shown}")

    def finish_campaign(self, campaign_id: int, *, status: str, summary: dict[str, Any], reason: str) -> None:
        """End a running campaign as ``finished``, ``failed`` or ``stopped`` (event ``campaign_finished``)."""
        one_of(status, [s for s in CAMPAIGN_STATUSES if s != "running"], "the status of a finished campaign")
        summary = json_dict(summary, "a campaign summary")
        now = self._base.clock()
        with self._base._write(f"finish campaign {campaign_id}") as conn:
            row = self._base._campaign_row(conn, campaign_id)
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
            self._base._event(
                conn,
                now,
                kind=EventKind.CAMPAIGN_FINISHED,
                reason=reason,
                factory_id=row.factory_id,
                campaign_id=campaign_id,
                data={"number": row.number, "status": status, "summary": summary},
            )
