"""A campaign's life around its search: open (or resume) it, build its proposer and budget, close it."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from ..data import DataProfile, Dataset, load_dataset
from ..errors import NotFoundError, PausedError
from ..events import EventKind, StopReason
from ..propose import LLM_AWARE, LLMCall, Proposer, SearchContext, make_proposer
from ..results import BudgetLimits, BudgetSpent, ChampionSummary, GateOutcome, Progress, RunBudget, RunResult
from ..spec import FactorySpec, fit_to_data
from ..store import CampaignRecord, FactoryRecord, Pauses, Store
from ..train import portfolio_configs, resolved_space
from ._budget import Budget, Stop
from ._parts import default_owner, metric_direction
from ._sealed import rotate_if_worn, with_current_split
from ._trials import COUNTED
from ._views import row_of, trial_view
from ._warm import borrowed_configs


@dataclass(frozen=True)
class Opened:
    """A campaign ready to search: the spec fitted to the data, the split in force, the campaign record."""

    spec: FactorySpec
    data: Dataset
    factory: FactoryRecord
    campaign: CampaignRecord
    resumed: bool
    metric: str

    @functools.cached_property
    def profile(self) -> DataProfile:
        """The data's meta-features, read once: for the warm start of a cold factory and the run's summary."""
        return DataProfile.of(self.data)


def load_fitted(spec: FactorySpec) -> tuple[FactorySpec, Dataset]:
    """The data, and the spec fitted to its task and size; data and trainer problems surface before anything
    is written (each trainer's search space is resolved for the task here, so a bad one is refused now)."""
    data = load_dataset(spec)
    spec = fit_to_data(spec, data.task, data.n_rows)
    for t in spec.trainers:
        resolved_space(t, data.task)
    return spec, data


def open_campaign(store: Store, spec: FactorySpec, data: Dataset, trigger: str | None) -> Opened:
    """Refuse a paused factory, then resume its unfinished campaign or start a new one (``spec`` fitted)."""
    frec = store.ensure_factory(spec.name, spec.model_dump(mode="json"))
    held = Pauses(store).state(frec.id)
    if held is not None:
        raise PausedError(held.explain(spec.name))
    data = with_current_split(store, frec.id, spec, data)
    last = store.latest_campaign(frec.id)
    if last is None or last.status != "running" or last.data_fingerprint != data.fingerprint:
        # before the campaign exists, so a `darkfab worker` that finds it already sees the new split
        data = rotate_if_worn(store, factory_id=frec.id, spec=spec, data=data)
    campaign, resumed = _resume_or_create(store, frec.id, spec, data, trigger)
    if not resumed:
        _record_leaks(store, frec.id, campaign.id, data)
    return Opened(spec, data, frec, campaign, resumed, spec.primary_metric(data.task))


def _resume_or_create(
    store: Store, factory_id: int, spec: FactorySpec, data: Dataset, trigger: str | None
) -> tuple[CampaignRecord, bool]:
    last = store.latest_campaign(factory_id)
    if last is not None and last.status == "running":
        if last.data_fingerprint == data.fingerprint:
            owner = default_owner("run", spec.name)
            mine = tuple(
                t.id
                for t in store.list_trials(campaign_id=last.id, states=("running",))
                if t.lease_owner in ("", owner)
            )
            if mine:
                store.requeue_interrupted(
                    last.id, reason="the process running this campaign stopped; resuming", only=mine
                )
            store.reclaim_expired(last.id, reason="its worker went silent past the lease; requeued")
            store.append_event(
                kind=EventKind.CAMPAIGN_RESUMED,
                reason="an unfinished campaign was found; resuming it",
                factory_id=factory_id,
                campaign_id=last.id,
            )
            return last, True
        store.finish_campaign(
            last.id,
            status="stopped",
            summary={},
            reason="the data changed since this campaign began; starting a new one",
        )
    trigger = trigger or ("first" if last is None else "warm_start")
    budget = spec.budget.model_dump(mode="json")
    return store.create_campaign(
        factory_id, budget=budget, trigger=trigger, seed=spec.search.seed, data_fingerprint=data.fingerprint
    ), False


def _record_leaks(store: Store, factory_id: int, campaign_id: int, data: Dataset) -> None:
    """One ``leaked_feature`` event per column that gives the target away: the rule, the figure, the decision."""
    for leak in data.leaks:
        decision = (
            "kept as a feature because data.keep_leaky names it"
            if leak.kept
            else f"dropped from training (keep it on purpose with `data.keep_leaky: [{leak.feature}]`)"
        )
        store.append_event(
            kind=EventKind.LEAKED_FEATURE,
            reason=f"{leak.reason}; {decision}",
            factory_id=factory_id,
            campaign_id=campaign_id,
            data=leak.as_json(),
        )


def running_campaign(store: Store, name: str) -> CampaignRecord | None:
    """The factory's campaign that is running now, if any (None for an unknown factory too)."""
    try:
        factory_id = store.get_factory(name).id
    except NotFoundError:
        return None
    last = store.latest_campaign(factory_id)
    return last if last is not None and last.status == "running" else None


def search_proposer(store: Store, opened: Opened) -> tuple[Proposer, int]:
    """The proposer the factory file names, told the whole history; and how many trials came from earlier
    campaigns (the warm start)."""
    spec, data, campaign = opened.spec, opened.data, opened.campaign
    history = [t for t in store.list_trials(factory_id=opened.factory.id) if t.state in COUNTED]
    objectives = tuple(spec.search.objectives) or (opened.metric,)

    def record_llm_call(call: LLMCall) -> None:
        store.add_llm_call(factory_id=opened.factory.id, campaign_id=campaign.id, **call.as_record())

    proposer = make_proposer(
        spec.search.proposer,
        SearchContext(
            trainers=spec.trainers,
            spaces={t.name: resolved_space(t, data.task) for t in spec.trainers},
            directions=tuple(metric_direction(spec, data, m) for m in objectives),
            objective_names=objectives,
            seed=spec.search.seed + campaign.number - 1,
            startup_trials=spec.search.startup_trials,
            pruner=spec.search.pruner,
            description=spec.objective.description or "",
            constraints=tuple(str(c) for c in spec.objective.constraints),
            llm=spec.search.llm,
            portfolio=tuple(spec.search.portfolio_members()),
            warm_configs=portfolio_configs(list(spec.trainers), data.task),
            borrowed_configs=() if history else borrowed_configs(store, spec, opened.profile, opened.factory.id),
        ),
        on_llm_call=record_llm_call,
        llm_spent=store.llm_usage(campaign.id) if spec.search.proposer in LLM_AWARE else (0, 0.0),
    )
    proposer.replay([trial_view(t, objectives) for t in history])
    return proposer, sum(1 for t in history if t.campaign_id != campaign.id)


def budget_of(campaign: CampaignRecord) -> Budget:
    """The campaign's limits and what it spent before (a resumed campaign keeps spending its own budget)."""
    limits = campaign.budget
    return Budget(
        trials=limits.get("trials"),
        time_s=limits.get("time"),
        cpu_s=limits.get("cpu"),
        spent_time_s=campaign.elapsed_s or 0.0,
        spent_cpu_s=campaign.cpu_s or 0.0,
    )


def run_result(
    store: Store,
    opened: Opened,
    *,
    warm: int,
    budget: Budget,
    stop: Stop,
    verdict: GateOutcome | None,
    champion: ChampionSummary | None,
) -> RunResult:
    """What one `darkfab run` did, read back from the store."""
    campaign, data = opened.campaign, opened.data
    counts = store.count_trials(campaign.id)
    board = sorted(
        (row_of(t) for t in store.list_trials(campaign_id=campaign.id)),
        key=lambda r: (r.state == "completed", bool(r.feasible), r.reward or -math.inf),
        reverse=True,
    )
    return RunResult(
        factory=opened.spec.name,
        campaign=campaign.id,
        campaign_number=campaign.number,
        resumed=opened.resumed,
        warm_started_from=warm,
        task=data.task,
        metric=opened.metric,
        champion=champion,
        beat=verdict.beat if verdict else None,
        gate=verdict,
        trials=counts,
        budget=RunBudget(
            limits=BudgetLimits(trials=budget.trials, time_s=budget.time_s, cpu_s=budget.cpu_s),
            spent=BudgetSpent(
                trials=sum(counts.get(s, 0) for s in COUNTED),
                seconds=round(budget.spent_time_s, 3),
                cpu_seconds=round(budget.spent_cpu_s, 3),
            ),
        ),
        store=store.url,
        leaderboard=[r.__dict__ for r in board[:10]],
        stopped_because=stop.message,
        stop_reason=stop.reason.value,
        leaks=[leak.as_json() for leak in data.leaks],
        task_reason=data.task_reason,
        data_profile=opened.profile.to_dict(),
    )


def close_campaign(
    store: Store,
    opened: Opened,
    result: RunResult,
    stop: Stop,
    budget: Budget,
    on_progress: Callable[[Progress], None] | None,
) -> None:
    """Record the campaign's end: finished (after its gate), or left open because a person paused the factory."""
    campaign = opened.campaign
    if stop.reason is StopReason.PAUSED:
        store.append_event(
            kind=EventKind.CAMPAIGN_PAUSED,
            reason="the factory was paused: the campaign stopped after its trials in flight, without a gate; "
            "`darkfab run` resumes it once the factory is resumed",
            factory_id=opened.factory.id,
            campaign_id=campaign.id,
            data={"stopped_because": stop.message, "trials": result.trials},
        )
    else:
        store.finish_campaign(
            campaign.id,
            status="finished",
            summary=result.to_json(),
            reason=f"campaign finished: {stop.message or 'budget reached'}",
        )
    if on_progress:
        on_progress(
            Progress(
                kind="campaign_finished",
                message=stop.message,
                trials_done=result.budget.spent.trials,
                trials_total=budget.trials,
                elapsed_s=budget.spent_time_s,
                time_limit_s=budget.time_s,
            )
        )
