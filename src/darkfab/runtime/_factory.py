"""The factory facade: a declared factory bound to a store; ``run``, ``work`` and the reads.

``Factory.run`` resumes the factory's unfinished campaign or starts a new one warm-started from the
history, runs it to its budget (:class:`._coordinator.Coordinator`), puts the best candidate through the
sealed-test gate (:class:`._gatekeeper.GateKeeper`) and registers it. ``Factory.work`` is one of several
workers of a factory (:class:`._worker_loop.WorkerLoop`). Neither holds an algorithm.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import Dataset, check_rows
from ..errors import DarkfabError, DataError
from ..events import StopReason
from ..execute import Executor
from ..registry import Registry
from ..results import ChampionSummary, GateOutcome, Leaderboard, Progress, RunResult
from ..spec import FactorySpec, default_spec, load_spec, with_overrides
from ..store import CampaignRecord, ModelVersionRecord, Pauses, Store, TrialRecord
from ..train import DarkfabModel, load_model
from ._budget import Budget
from ._campaigns import (
    budget_of,
    close_campaign,
    load_fitted,
    open_campaign,
    run_result,
    running_campaign,
    search_proposer,
)
from ._coordinator import Coordinator
from ._gatekeeper import GateContext, GateKeeper
from ._lineage import package_versions
from ._mirror import mirror_run
from ._parts import default_owner, reward_model, started_executor
from ._reads import FactoryStatus, status_of, target_name
from ._sealed import with_current_split
from ._trials import CampaignContext
from ._views import row_of
from ._worker_loop import WorkerLoop

__all__ = ["Factory", "FactoryStatus", "package_versions"]


class Factory:
    """A declared factory bound to a store. Cheap to make; ``run`` does the work."""

    def __init__(self, spec: FactorySpec, *, store: str | Store | None = None) -> None:
        self.spec = spec
        self._store_arg = store
        self._store: Store | None = store if isinstance(store, Store) else None

    @classmethod
    def from_file(cls, path: str | Path, *, store: str | Store | None = None) -> Factory:
        return cls(load_spec(path), store=store)

    @classmethod
    def default(cls, *, store: str | Store | None = None) -> Factory:
        return cls(default_spec(), store=store)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self._store_arg if isinstance(self._store_arg, str) else None)
        return self._store

    def close(self) -> None:
        if self._store is not None and not isinstance(self._store_arg, Store):
            self._store.close()
            self._store = None

    def __enter__(self) -> Factory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running -------------------------------------------------------------------------------
    def run(
        self,
        *,
        trials: int | None = None,
        time: str | float | None = None,
        cpu: str | float | None = None,
        workers: int | None = None,
        seed: int | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        trigger: str | None = None,
    ) -> RunResult:
        """Run (or resume) a campaign to its budget, gate the best candidate and register a winner.

        ``trigger`` is recorded on a new campaign as what started it (``drift``, ``quality_decay``...);
        ``first`` or ``warm_start`` when absent.
        """
        spec = with_overrides(self.spec, trials=trials, time=time, cpu=cpu, workers=workers, seed=seed)
        spec, data = load_fitted(spec)
        store = self.store
        opened = open_campaign(store, spec, data, trigger)
        spec, data = opened.spec, opened.data
        proposer, warm = search_proposer(store, opened)
        budget = budget_of(opened.campaign)
        registry = Registry(store)
        executor = started_executor(spec, data)
        try:
            ctx = _context(spec, store, opened.campaign, data, executor, budget, registry, on_progress)
            coordinator = Coordinator(ctx, proposer)
            stop = coordinator.run()
            verdict: GateOutcome | None = None
            champion: ChampionSummary | None = None
            if stop.reason is not StopReason.PAUSED:  # paused: no gate; the campaign resumes after `resume`
                wanted = spec.search.ensemble
                if wanted is True or (wanted == "auto" and budget.trials is None):
                    coordinator.build_ensemble()
                gatekeeper = GateKeeper(
                    GateContext(spec, store, registry, executor, opened.campaign, data, opened.metric)
                )
                verdict, champion = gatekeeper.decide()
        finally:
            executor.close()
        result = run_result(store, opened, warm=warm, budget=budget, stop=stop, verdict=verdict, champion=champion)
        close_campaign(store, opened, result, stop, budget, on_progress)
        mirror_run(store, spec, result)  # registry.mlflow: after darkfab's own record is complete
        return result

    def work(
        self,
        *,
        workers: int | None = None,
        wait: float = 30.0,
        forever: bool = False,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> int:
        """Be one of several workers of this factory (`darkfab worker`): claim its queued trials under leases,
        run them in a local pool, score them here and record them. Returns how many trials it finished.

        Waits up to ``wait`` seconds for the factory and a running campaign to appear; with ``forever`` it
        keeps waiting for the next campaign.
        """
        spec, data = load_fitted(with_overrides(self.spec, workers=workers))
        store = self.store
        owner = default_owner("worker", spec.name)
        shift = _Shift(spec, store, data, owner, on_progress)
        try:
            return shift.work(wait=wait, forever=forever)
        finally:
            shift.executor.close()
            with contextlib.suppress(DarkfabError):  # the store may be what failed; the row then just ages out
                store.retire_worker(owner)

    # -- reading -------------------------------------------------------------------------------
    def status(self) -> FactoryStatus:
        return status_of(self.store, self.spec)

    def trials(self) -> list[TrialRecord]:
        store = self.store
        return store.list_trials(factory_id=store.get_factory(self.name).id)

    def models(self) -> list[ModelVersionRecord]:
        return Registry(self.store).versions(self.name)

    def leaderboard(self, limit: int = 20) -> Leaderboard:
        """Completed trials of every campaign, best first (feasible, then reward); a table in a notebook."""
        done = [row_of(t) for t in self.trials() if t.state == "completed"]
        done.sort(key=lambda r: (bool(r.feasible), r.reward if r.reward is not None else -math.inf), reverse=True)
        return Leaderboard.of(done[:limit], self.spec.objective.metric or "")

    def lineage(self, version: int | str) -> dict[str, Any]:
        return Registry(self.store).lineage(self.name, version)

    def load_model(self, version: int | str = "champion") -> DarkfabModel:
        """The registered model, its artifact's content hash verified before it is unpickled."""
        _, blob = Registry(self.store).load_bytes(self.name, version)
        return load_model(blob)

    def predict(
        self,
        frame: pd.DataFrame,
        *,
        version: int | str = "champion",
        where: str = "input",
        ignore_extra: bool = False,
    ) -> pd.DataFrame:
        """Predictions for raw rows, with the target's name as the column (and class probabilities).

        Every row is checked first (:func:`darkfab.data.check_rows`): a column the model does not read is
        refused unless ``ignore_extra`` (the target's own column is always allowed), and a numeric value that
        is text, infinite or too large is a DataError naming the row, the column and the value.
        """
        _, blob = Registry(self.store).load_bytes(self.name, version)
        model = load_model(blob)
        target = target_name(self.store, self.name, version)
        rows = check_rows(
            frame, model.features, model.feature_types, where, allowed=(target,), ignore_extra=ignore_extra
        )
        if len(rows) == 0:
            raise DataError(f"{where}: no rows to predict; fix: give at least one data row")
        out = pd.DataFrame({target: model.predict(rows)})
        if model.task == "classification":
            proba = model.predict_proba(rows)
            for i, cls in enumerate(model.classes):
                out[f"proba_{cls}"] = proba[:, i]
        return out


def _context(
    spec: FactorySpec,
    store: Store,
    campaign: CampaignRecord,
    data: Dataset,
    executor: Executor,
    budget: Budget,
    registry: Registry,
    on_progress: Callable[[Progress], None] | None,
    owner: str | None = None,
) -> CampaignContext:
    return CampaignContext(
        spec=spec,
        store=store,
        campaign=campaign,
        dataset=data,
        executor=executor,
        reward=reward_model(spec, data, store),
        budget=budget,
        artifacts=registry.artifacts,
        on_progress=on_progress,
        owner=owner,
    )


class _Shift:
    """One `darkfab worker`'s session: wait for a running campaign of the factory, work it, wait for the next."""

    def __init__(
        self,
        spec: FactorySpec,
        store: Store,
        data: Dataset,
        owner: str,
        on_progress: Callable[[Progress], None] | None,
    ) -> None:
        self.spec, self.store, self.data, self.owner, self.on_progress = spec, store, data, owner, on_progress
        self.registry = Registry(store)
        self.pauses = Pauses(store)
        self.executor = started_executor(spec, data)

    def work(self, *, wait: float, forever: bool) -> int:
        finished = 0
        idle_since = time.monotonic()
        announced = 0.0
        while True:
            if time.monotonic() - announced >= self.spec.execution.lease / 3:  # the coordinator queues for us
                self.store.announce_worker(self.spec.name, owner=self.owner, slots=self.executor.capacity)
                announced = time.monotonic()
            campaign = self._campaign()
            if campaign is None:
                if not forever and time.monotonic() - idle_since > wait:
                    return finished
                time.sleep(0.5)
                continue
            finished += self._work_on(campaign)
            idle_since = announced = time.monotonic()

    def _campaign(self) -> CampaignRecord | None:
        """The running campaign to work on; None when there is none or the factory is paused."""
        campaign = running_campaign(self.store, self.spec.name)
        if campaign is not None and self.pauses.state(campaign.factory_id) is not None:
            return None  # paused: nothing to claim; wait as for the next campaign
        if campaign is not None and campaign.data_fingerprint != self.data.fingerprint:
            raise DataError(
                f"this worker reads different data than campaign {campaign.number} of "
                f"{self.spec.name!r} (fingerprint {self.data.fingerprint[:12]} vs "
                f"{campaign.data_fingerprint[:12]}); fix: point data.source at the same rows"
            )
        return campaign

    def _work_on(self, campaign: CampaignRecord) -> int:
        split = with_current_split(self.store, campaign.factory_id, self.spec, self.data)
        if split is not self.data:  # the sealed set was rotated: score on the coordinator's split
            self.data = split
            self.executor.close()
            self.executor = started_executor(self.spec, self.data)
        budget = Budget(None, None, None)
        ctx = _context(
            self.spec,
            self.store,
            campaign,
            self.data,
            self.executor,
            budget,
            self.registry,
            self.on_progress,
            self.owner,
        )

        def campaign_over(c: CampaignRecord = campaign) -> bool:
            return self.store.get_campaign(c.id).status != "running" or self.pauses.state(c.factory_id) is not None

        return WorkerLoop(ctx).work(stop_when=campaign_over)
