"""The factory: wires spec, data, store, proposers, executors, evaluation, gate and registry together.

``Factory.run`` resumes the factory's unfinished campaign or starts a new one warm-started from the
history, runs it to its budget, puts the best candidate through the sealed-test gate and registers it.
"""

from __future__ import annotations

import contextlib
import math
import platform
import time as _clock
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .campaign import (
    STOP_PAUSED,
    Budget,
    CampaignRun,
    default_owner,
    limits_of,
    predict_split,
    row_of,
    trial_view,
    worker_payload,
)
from .data import JITTER, Dataset, check_rows, load_dataset
from .errors import DarkfabError, DataError, IntegrityError, NotFoundError, PausedError
from .evaluate import (
    CustomMetric,
    RewardModel,
    ScoreCI,
    Suspicion,
    compute_metrics,
    first_champion,
    gate,
    load_custom_metrics,
    memorization,
    score_with_ci,
    search_evidence,
    suspicions,
)
from .execute import Executor, make_executor
from .mirror import mirror_run
from .propose import LLM_AWARE, LLMCall, SearchContext, make_proposer
from .registry import APPROVAL_REQUESTED, PENDING, Registry
from .results import ChampionSummary, Leaderboard, Progress, RunResult
from .sealed import rotate_if_worn, sealed_set, with_current_split
from .spec import Direction, FactorySpec, default_spec, fit_to_data, load_spec, with_overrides
from .store import CampaignRecord, ModelVersionRecord, Pauses, Store, TrialRecord
from .train import DarkfabModel, EnsembleModel, can_refit, load_model, portfolio_configs, refit, resolved_space

_DISTRIBUTION_ALIASES = {"xgboost": ("xgboost-cpu",)}
"""Other distributions of the same import package; the lineage records the one installed, by its own name."""
PACKAGES = ("darkfab", "numpy", "pandas", "scikit-learn", "lightgbm", "xgboost", "optuna", "scipy")


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python and the installed versions of the packages a model depends on (for lineage and benchmarks)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES + extra:
        for dist in (name, *_DISTRIBUTION_ALIASES.get(name, ())):
            try:
                out[dist] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                pass
    return out


@dataclass(frozen=True)
class FactoryStatus:
    name: str
    campaigns: list[dict[str, Any]]
    champion: dict[str, Any] | None
    trials: dict[str, int]
    store: str
    workers: list[dict[str, Any]]  # `darkfab worker` processes seen within a lease
    leaks: list[dict[str, Any]] = field(default_factory=list)  # the latest campaign's leaked columns, decided
    sealed: dict[str, Any] | None = None  # the latest gate's sealed set: sealed_uses of sealed_budget
    paused: dict[str, Any] | None = None  # who paused the factory, when and why (`darkfab pause-factory`)
    pending: dict[str, Any] | None = None  # the gate winner waiting for approval (gate.approval: required)
    task: dict[str, Any] | None = None  # the latest finished campaign's task and why it is that task


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
        data = load_dataset(spec)  # data problems surface before anything is written
        spec = fit_to_data(spec, data.task, data.n_rows)
        metric = spec.primary_metric(data.task)
        spaces = {t.name: resolved_space(t, data.task) for t in spec.trainers}
        store = self.store
        frec = store.ensure_factory(spec.name, spec.model_dump(mode="json"))
        held = Pauses(store).state(frec.id)
        if held is not None:
            raise PausedError(held.explain(spec.name))
        data = with_current_split(store, frec.id, spec, data)
        last = store.latest_campaign(frec.id)
        if last is None or last.status != "running" or last.data_fingerprint != data.fingerprint:
            # before the campaign exists, so a `darkfab worker` that finds it already sees the new split
            data = rotate_if_worn(store, factory_id=frec.id, spec=spec, data=data)
        campaign, resumed = self._campaign(store, frec.id, spec, data, trigger)
        if not resumed:
            _record_leaks(store, frec.id, campaign.id, data)
        history = [t for t in store.list_trials(factory_id=frec.id) if t.state in ("completed", "failed", "pruned")]
        objectives = tuple(spec.search.objectives) or (metric,)
        directions = tuple(_direction(spec, data, m) for m in objectives)

        def record_llm_call(call: LLMCall) -> None:
            store.add_llm_call(factory_id=frec.id, campaign_id=campaign.id, **call.as_record())

        proposer = make_proposer(
            spec.search.proposer,
            SearchContext(
                trainers=spec.trainers,
                spaces=spaces,
                directions=directions,
                objective_names=objectives,
                seed=spec.search.seed + campaign.number - 1,
                startup_trials=spec.search.startup_trials,
                pruner=spec.search.pruner,
                description=spec.objective.description or "",
                constraints=tuple(str(c) for c in spec.objective.constraints),
                llm=spec.search.llm,
                portfolio=tuple(spec.search.portfolio_members()),
                warm_configs=portfolio_configs(list(spec.trainers), data.task),
            ),
            on_llm_call=record_llm_call,
            llm_spent=store.llm_usage(campaign.id) if spec.search.proposer in LLM_AWARE else (0, 0.0),
        )
        proposer.replay([trial_view(t, objectives) for t in history])
        warm = sum(1 for t in history if t.campaign_id != campaign.id)
        budget_spec = campaign.budget
        budget = Budget(
            trials=budget_spec.get("trials"),
            time_s=budget_spec.get("time"),
            cpu_s=budget_spec.get("cpu"),
            spent_time_s=campaign.elapsed_s or 0.0,
            spent_cpu_s=campaign.cpu_s or 0.0,
        )
        reward = reward_model(spec, data, store)
        registry = Registry(store)
        executor = make_executor(spec.execution.backend, **executor_options(spec))
        try:
            executor.start(worker_payload(data, spec), workers=spec.execution.workers, limits=limits_of(spec))
            loop = CampaignRun(
                spec=spec,
                store=store,
                campaign=campaign,
                dataset=data,
                proposer=proposer,
                executor=executor,
                reward=reward,
                budget=budget,
                artifacts=registry.artifacts,
                on_progress=on_progress,
            )
            stopped = loop.run()
            paused = stopped == STOP_PAUSED  # no gate: the campaign stays open and resumes after `resume`
            wanted = spec.search.ensemble
            if not paused and (wanted is True or (wanted == "auto" and budget.trials is None)):
                loop.build_ensemble()
            verdict, champion = (
                (None, None) if paused else self._gate(spec, store, registry, executor, campaign, data, metric)
            )
        finally:
            executor.close()
        counts = store.count_trials(campaign.id)
        board = sorted(
            (row_of(t) for t in store.list_trials(campaign_id=campaign.id)),
            key=lambda r: (r.state == "completed", bool(r.feasible), r.reward or -math.inf),
            reverse=True,
        )
        result = RunResult(
            factory=spec.name,
            campaign=campaign.id,
            campaign_number=campaign.number,
            resumed=resumed,
            warm_started_from=warm,
            task=data.task,
            metric=metric,
            champion=champion,
            beat=verdict.get("beat") if verdict else None,
            gate=verdict,
            trials=counts,
            budget={
                "limits": budget_spec,
                "spent": {
                    "trials": sum(counts.get(s, 0) for s in ("completed", "failed", "pruned")),
                    "seconds": round(budget.spent_time_s, 3),
                    "cpu_seconds": round(budget.spent_cpu_s, 3),
                },
            },
            store=store.url,
            leaderboard=[r.__dict__ for r in board[:10]],
            stopped_because=stopped,
            leaks=[leak.as_json() for leak in data.leaks],
            task_reason=data.task_reason,
        )
        if paused:
            store.append_event(
                kind="campaign_paused",
                reason="the factory was paused: the campaign stopped after its trials in flight, without a gate; "
                "`darkfab run` resumes it once the factory is resumed",
                factory_id=frec.id,
                campaign_id=campaign.id,
                data={"stopped_because": STOP_PAUSED, "trials": counts},
            )
        else:
            store.finish_campaign(
                campaign.id,
                status="finished",
                summary=result.to_json(),
                reason=f"campaign finished: {stopped or 'budget reached'}",
            )
        if on_progress:
            on_progress(
                Progress(
                    kind="campaign_finished",
                    message=stopped,
                    trials_done=result.budget["spent"]["trials"],
                    trials_total=budget.trials,
                    elapsed_s=budget.spent_time_s,
                    time_limit_s=budget.time_s,
                )
            )
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
        import time as _time

        spec = with_overrides(self.spec, workers=workers)
        data = load_dataset(spec)
        spec = fit_to_data(spec, data.task, data.n_rows)
        store = self.store
        reward = reward_model(spec, data, store)
        registry = Registry(store)
        executor = make_executor(spec.execution.backend, **executor_options(spec))
        owner = default_owner("worker", spec.name)
        pauses = Pauses(store)
        finished = 0
        idle_since = _time.monotonic()
        announced = 0.0
        try:
            executor.start(worker_payload(data, spec), workers=spec.execution.workers, limits=limits_of(spec))
            while True:
                if _time.monotonic() - announced >= spec.execution.lease / 3:  # the coordinator queues for us
                    store.announce_worker(spec.name, owner=owner, slots=executor.capacity)
                    announced = _time.monotonic()
                campaign = self._running_campaign(store, spec.name)
                if campaign is not None and pauses.state(campaign.factory_id) is not None:
                    campaign = None  # paused: nothing to claim; wait as for the next campaign
                if campaign is None:
                    if not forever and _time.monotonic() - idle_since > wait:
                        return finished
                    _time.sleep(0.5)
                    continue
                if campaign.data_fingerprint != data.fingerprint:
                    raise DataError(
                        f"this worker reads different data than campaign {campaign.number} of "
                        f"{spec.name!r} (fingerprint {data.fingerprint[:12]} vs "
                        f"{campaign.data_fingerprint[:12]}); fix: point data.source at the same rows"
                    )
                split = with_current_split(store, campaign.factory_id, spec, data)
                if split is not data:  # the sealed set was rotated: score on the coordinator's split
                    data = split
                    executor.close()
                    executor = make_executor(spec.execution.backend, **executor_options(spec))
                    executor.start(worker_payload(data, spec), workers=spec.execution.workers, limits=limits_of(spec))
                loop = CampaignRun(
                    spec=spec,
                    store=store,
                    campaign=campaign,
                    dataset=data,
                    proposer=None,
                    executor=executor,
                    reward=reward,
                    budget=Budget(None, None, None),
                    artifacts=registry.artifacts,
                    on_progress=on_progress,
                    owner=owner,
                )

                def campaign_over(c: CampaignRecord = campaign) -> bool:
                    return store.get_campaign(c.id).status != "running" or pauses.state(c.factory_id) is not None

                finished += loop.work(stop_when=campaign_over)
                idle_since = announced = _time.monotonic()
        finally:
            executor.close()
            with contextlib.suppress(DarkfabError):  # the store may be what failed; the row then just ages out
                store.retire_worker(owner)

    @staticmethod
    def _running_campaign(store: Store, name: str) -> CampaignRecord | None:
        try:
            factory_id = store.get_factory(name).id
        except NotFoundError:
            return None
        last = store.latest_campaign(factory_id)
        return last if last is not None and last.status == "running" else None

    def _campaign(
        self, store: Store, factory_id: int, spec: FactorySpec, data: Dataset, trigger: str | None = None
    ) -> tuple[CampaignRecord, bool]:
        last = store.latest_campaign(factory_id)
        budget = spec.budget.model_dump(mode="json")
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
                    kind="campaign_resumed",
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
        return store.create_campaign(
            factory_id, budget=budget, trigger=trigger, seed=spec.search.seed, data_fingerprint=data.fingerprint
        ), False

    def _gate(
        self,
        spec: FactorySpec,
        store: Store,
        registry: Registry,
        executor: Executor,
        campaign: CampaignRecord,
        data: Dataset,
        metric: str,
    ) -> tuple[dict[str, Any] | None, ChampionSummary | None]:
        fid = store.get_factory(spec.name).id
        direction = spec.direction(data.task)
        done = [t for t in store.list_trials(campaign_id=campaign.id, states=("completed",)) if t.artifact_path]
        done.sort(key=lambda t: (bool(t.feasible), t.reward if t.reward is not None else -math.inf), reverse=True)
        current = _current_champion(registry, spec.name)
        feasible = [t for t in done if t.feasible]
        picked = self._first_unsuspicious(spec, store, registry, executor, campaign, data, metric, feasible)
        if picked is None:
            if feasible:
                reason = "every feasible candidate was flagged as suspicious (see the candidate_flagged events)"
            elif done:
                reason = "no feasible candidate in this campaign"
            else:
                reason = "no completed candidate in this campaign"
            wear = sealed_set(store, fid, spec, data)
            worn = wear.summary(uses=wear.uses + 1) if feasible else wear.summary()  # flagging read it
            store.append_event(
                kind="gate_verdict",
                reason=reason,
                factory_id=fid,
                campaign_id=campaign.id,
                data={"passed": False, **(worn if feasible else {})},
            )
            champ = self._champion_summary(current, executor, data, metric, spec, promoted=False) if current else None
            return {"passed": False, "reason": reason, **worn, "flagged": _flagged(store, campaign.id)}, champ
        cand, cand_bytes, cand_pred, probe = picked
        champ_pred: np.ndarray | None = None
        beat: dict[str, Any]
        if current is not None:
            try:
                champ_pred = predict_split(executor, _gated_bytes(registry, current, data), "test")
                beat = {"kind": "champion", "version": current[0].version, "trainer": current[0].trainer}
            except RuntimeError as err:
                champ_pred = None
                beat = {"kind": "baseline", "why": f"champion v{current[0].version} cannot score the data: {err}"}
        else:
            beat = {"kind": "baseline", "why": "no champion yet"}
        if champ_pred is None:
            champ_pred = data.baseline_predictions(len(data.y_test))
            beat["name"] = "class shares of the training data" if data.task == "classification" else "training mean"
        g = spec.gate
        verdict = gate(
            task=data.task,
            metric=metric,
            direction=direction,
            y_true=data.y_test,
            candidate=cand_pred,
            champion=champ_pred,
            min_improvement=g.min_improvement,
            confidence=g.confidence,
            n_boot=g.bootstrap,
            seed=spec.search.seed,
            custom=_custom_metrics(spec),
        )
        if current is None:  # a first champion on a tiny sealed set may pass on the search's evidence
            evidence = search_evidence(data, cand.metrics or {}, metric, custom=_custom_metrics(spec))
            verdict = first_champion(verdict, sealed_rows=len(data.y_test), evidence=evidence, direction=direction)
        if current is not None and beat["kind"] == "champion":
            from .teach import reward_verdict

            verdict = reward_verdict(spec, store, data, verdict, cand, cand_pred, current[0], champ_pred)
        beat["score"] = verdict.champion.score if verdict.champion else None
        vjson = {
            "passed": bool(verdict.passed),
            "reason": verdict.reason,
            "trial": cand.id,
            "delta": verdict.delta,
            "p_better": verdict.p_better,
            "beat": beat if verdict.passed else None,
            "candidate": _ci(verdict.candidate),
            "champion": _ci(verdict.champion) if verdict.champion else None,
            "memorization": probe,
            "flagged": _flagged(store, campaign.id),
            "weak_evidence": verdict.weak_evidence,
        }
        wear = sealed_set(store, fid, spec, data)
        vjson.update(wear.summary(uses=wear.uses + 1))
        store.append_event(
            kind="gate_verdict",
            reason=verdict.reason,
            factory_id=fid,
            campaign_id=campaign.id,
            trial_id=cand.id,
            data=vjson,
        )
        if not verdict.passed:
            scored = verdict.champion if beat["kind"] == "champion" else None  # the gate scored it just now
            champ = self._champion_summary(current, executor, data, metric, spec, promoted=False, scored=scored)
            return vjson, champ
        lineage = {
            "proposal": {
                "proposer": cand.proposer,
                "reason": cand.reason,
                "key": cand.key,
                "parents": list(cand.parents),
            },
            "trial_id": cand.id,
            "campaign": campaign.number,
            "factory": spec.name,
            "parents": [current[0].version] if current else [],
            "trainer": cand.trainer,
            "params": cand.params,
            "data_fingerprint": data.fingerprint,
            "features": list(data.features),
            "target": data.target,
            "task": data.task,
            "packages": package_versions(),
            "gate": {k: vjson[k] for k in ("reason", "delta", "p_better", "sealed_uses", "sealed_set")},
        }
        sealed = {"metric": metric, **_ci(verdict.candidate)}
        model_bytes, refit_info = self._refit(spec, data, cand, cand_bytes)
        lineage["refit"] = refit_info
        lineage["gated"] = {"artifact": cand.artifact_path, "valid": cand.metrics, "sealed_test": sealed}
        vjson["refit"] = refit_info
        alias = "champion" if current is None or spec.deploy.mode == "direct" else "challenger"
        why = f"passed the gate: {verdict.reason}"
        why += "" if alias == "champion" else f"; {spec.deploy.mode} against the champion before promotion"
        then = alias
        if spec.gate.approval == "required":  # registered, not promoted: approve() makes the same move later
            lineage["approval"] = {"required": True, "then": then}
            alias, why = PENDING, f"{why}; waits for a person's approval (gate.approval: required) to become {alias}"
        version = registry.register(
            spec.name,
            model_bytes,
            trial_id=cand.id,
            trainer=cand.trainer,
            params=cand.params,
            metrics={"valid": cand.metrics, "sealed_test": sealed},
            lineage=lineage,
            aliases=(alias,),
            reason=why,
        )
        if alias == PENDING:
            store.append_event(
                kind=APPROVAL_REQUESTED,
                reason=f"version {version.version} {why}; fix: `darkfab approve {version.version}` or reject it",
                factory_id=fid,
                campaign_id=campaign.id,
                trial_id=cand.id,
                data={"version": version.version, "then": then, "gate": verdict.reason},
            )
        return vjson, ChampionSummary(
            version=version.version,
            trainer=cand.trainer,
            params=cand.params,
            trial_id=cand.id,
            metrics={"valid": cand.metrics, "sealed_test": sealed},
            promoted_now=alias == "champion",
            alias=alias,
            refit=refit_info,
        )

    def _refit(self, spec: FactorySpec, data: Dataset, cand: TrialRecord, gated: bytes) -> tuple[bytes, dict[str, Any]]:
        """The gated configuration refit on the rows `gate.refit` names, and the record of what it was fit on.

        Returns the gated artifact itself (with the reason) when the option is off, the trainer is code the
        factory did not write, or the refit fails: a winner is never lost to its refit.
        """
        mode = spec.gate.refit
        n_train = len(data.y_train)
        gated_artifact = cand.artifact_path or ""
        kept: dict[str, Any] = {"trained_on": "train", "rows": n_train, "gated_artifact": gated_artifact}
        if mode == "none":
            return gated, {**kept, "why": "gate.refit is none: the registered model is the gated one"}
        # an ensemble is refit member by member, with the weights the selection gave them
        ensemble = cand.trainer == "ensemble" and cand.proposer == "ensemble"
        jobs = [self.store.get_trial(int(i)) for i in cand.params.get("members", [])] if ensemble else [cand]
        trainers = [next((t for t in spec.trainers if t.name == j.trainer), None) for j in jobs]
        for job, trainer in zip(jobs, trainers, strict=True):
            if trainer is None or not can_refit(trainer):
                why = f"trainer {job.trainer!r} is code the factory did not write; it never trains on held-out labels"
                return gated, {**kept, "why": why}
        parts = ["train", "valid", "test"] if mode == "train+valid+test" else ["train", "valid"]
        X = pd.concat([getattr(data, f"X_{p}") for p in parts], ignore_index=True)
        y = np.concatenate([getattr(data, f"y_{p}") for p in parts])
        threads = spec.execution.threads  # as the trials ran: OpenMP boosters crawl when threads outnumber free cores
        started = _clock.perf_counter()
        try:
            blobs = [
                refit(
                    task=data.task,
                    feature_types=dict(data.feature_types),
                    classes=data.classes,
                    X=X,
                    y=y,
                    trainer=trainer,
                    params=dict(job.params),
                    seed=job.seed,
                    threads=threads,
                )
                for job, trainer in zip(jobs, trainers, strict=True)
                if trainer is not None
            ]
            weights = [float(w) for w in cand.params.get("weights", [])]
            blob = EnsembleModel([load_model(b) for b in blobs], weights).to_bytes() if ensemble else blobs[0]
        except Exception as err:  # noqa: BLE001 - any failure of the estimator keeps the gated model instead
            return gated, {**kept, "why": f"the refit failed ({type(err).__name__}: {err})"}
        evidence = (
            "the gate's figures are evidence about this configuration trained on the training rows; the "
            f"registered model is the same configuration refit on {len(y)} rows ({mode})"
            + (
                ", sealed test included after the gate used it, so it has no held-out score of its own"
                if "test" in parts
                else ""
            )
        )
        return blob, {
            "trained_on": mode,
            "rows": int(len(y)),
            "gated_rows": n_train,
            "params": dict(cand.params),
            "rounds": "as searched: the boosting rounds are a searched parameter, not set by early stopping",
            "seconds": round(_clock.perf_counter() - started, 3),
            "gated_artifact": gated_artifact,
            "evidence": evidence,
        }

    def _first_unsuspicious(
        self,
        spec: FactorySpec,
        store: Store,
        registry: Registry,
        executor: Executor,
        campaign: CampaignRecord,
        data: Dataset,
        metric: str,
        candidates: list[TrialRecord],
    ) -> tuple[TrialRecord, bytes, np.ndarray, dict[str, Any]] | None:
        """The best candidate that raises no suspicion (leak, exploit, validation far above the sealed test,
        memorization of the sealed rows), with its memorization probe's figures.

        A flagged candidate is kept out of the gate with the reason on record, and the next one is tried.
        """
        direction = spec.direction(data.task)
        plain = [
            t.value
            for t in store.list_trials(campaign_id=campaign.id, states=("completed",))
            if t.value is not None and not _is_script(spec, t.trainer)
        ]
        reference: float | None
        if plain:
            reference = max(plain) if direction == "maximize" else min(plain)
        else:
            base = data.baseline_predictions(len(data.y_valid))
            reference = compute_metrics(
                data.task, data.y_valid, base, n_classes=data.n_classes, custom=_custom_metrics(spec)
            ).get(metric)
        for cand in candidates:
            if cand.value is None:
                continue
            blob = registry.artifacts.get(cand.artifact_path or "")
            test_pred = predict_split(executor, blob, "test")
            valid_pred = predict_split(executor, blob, "valid")
            ci = score_with_ci(
                data.task,
                metric,
                data.y_test,
                test_pred,
                n_boot=spec.gate.bootstrap,
                seed=spec.search.seed,
                custom=_custom_metrics(spec),
            )
            found = suspicions(
                task=data.task,
                direction=direction,
                y_valid=data.y_valid,
                valid_predictions=valid_pred,
                valid_score=float(cand.value),
                test=ci,
                reference_score=reference,
            )
            probe = self._memorization_probe(executor, blob, data, metric, direction, ci)
            if probe.get("suspicion") is not None:
                found.append(probe["suspicion"])
            if not found:
                return cand, blob, test_pred, probe["figures"]
            store.append_event(
                kind="candidate_flagged",
                reason="; ".join(f.reason for f in found),
                factory_id=cand.factory_id,
                campaign_id=campaign.id,
                trial_id=cand.id,
                data={"suspicions": [f.as_json() for f in found]},
            )
        return None

    @staticmethod
    def _memorization_probe(
        executor: Executor, blob: bytes, data: Dataset, metric: str, direction: Direction, sealed: ScoreCI
    ) -> dict[str, Any]:
        """The candidate scored on jittered copies of the sealed rows: ``figures`` and a ``suspicion`` or None."""
        try:
            copies = predict_split(executor, blob, "test_perturbed")
        except (RuntimeError, TimeoutError) as err:  # a model that cannot score the copies is not trusted either
            reason = f"could not be scored on perturbed copies of the sealed rows: {err}"
            return {"figures": {"error": reason}, "suspicion": Suspicion("memorization", reason, {})}
        n = data.n_classes
        perturbed = compute_metrics(data.task, data.y_test, copies, n_classes=n).get(metric)
        base = compute_metrics(data.task, data.y_test, data.baseline_predictions(len(data.y_test)), n_classes=n)
        if perturbed is None or base.get(metric) is None:
            return {"figures": {}, "suspicion": None}
        found = memorization(
            sealed_score=float(sealed.score),
            perturbed_score=float(perturbed),
            baseline_score=float(base[metric]),
            direction=direction,
            noise=float(sealed.high - sealed.low),
        )
        figures = {
            "sealed_score": float(sealed.score),
            "perturbed_score": float(perturbed),
            "baseline_score": float(base[metric]),
            "jitter": JITTER,
            "flagged": found is not None,
        }
        return {"figures": figures, "suspicion": found}

    def _champion_summary(
        self,
        current: tuple[ModelVersionRecord, bytes] | None,
        executor: Executor,
        data: Dataset,
        metric: str,
        spec: FactorySpec,
        promoted: bool,
        scored: Any = None,
    ) -> ChampionSummary | None:
        """The current champion, with its sealed-test score on this campaign's data (``scored`` if the gate has it)."""
        if current is None:
            return None
        rec = current[0]
        try:
            if scored is None:
                pred = predict_split(executor, _gated_bytes(Registry(self.store), current, data), "test")
                scored = score_with_ci(
                    data.task,
                    metric,
                    data.y_test,
                    pred,
                    n_boot=spec.gate.bootstrap,
                    seed=spec.search.seed,
                    custom=_custom_metrics(spec),
                )
            sealed: dict[str, Any] = {"metric": metric, **_ci(scored)}
        except RuntimeError:
            sealed = dict(rec.metrics.get("sealed_test", {}))
        return ChampionSummary(
            version=rec.version,
            trainer=rec.trainer,
            params=rec.params,
            trial_id=rec.trial_id,
            metrics={"valid": rec.metrics.get("valid", {}), "sealed_test": sealed},
            promoted_now=promoted,
            refit=rec.lineage.get("refit"),
        )

    # -- reading -------------------------------------------------------------------------------
    def status(self) -> FactoryStatus:
        store = self.store
        f = store.get_factory(self.name)
        campaigns: list[dict[str, Any]] = [
            {
                "number": c.number,
                "status": c.status,
                "trigger": c.trigger,
                "elapsed_s": c.elapsed_s,
                "trials": store.count_trials(c.id),
                "created_at": str(c.created_at),
            }
            for c in store.list_campaigns(f.id)
        ]
        champion = None
        try:
            v = store.get_model_version(f.id, "champion")
            champion = {"version": v.version, "trainer": v.trainer, "params": v.params, "metrics": v.metrics}
        except NotFoundError:
            pass
        totals: dict[str, int] = {}
        for c in campaigns:
            for k, n in c["trials"].items():
                totals[k] = totals.get(k, 0) + n
        workers = [
            {"owner": w.owner, "slots": w.slots, "started_at": str(w.started_at), "seen_at": str(w.seen_at)}
            for w in store.list_workers(self.name, within_s=self.spec.execution.lease)
        ]
        last = store.latest_campaign(f.id)
        leaks = [e.data for e in store.list_events(campaign_id=last.id, kinds=("leaked_feature",))] if last else []
        gates = [e.data for e in store.list_events(factory_id=f.id, kinds=("gate_verdict",)) if "sealed_uses" in e.data]
        sealed = {k: gates[-1][k] for k in ("sealed_uses", "sealed_budget", "sealed_set")} if gates else None
        held = Pauses(store).state(f.id)
        paused = {"person": held.person, "reason": held.reason, "since": str(held.since)} if held else None
        waiting = Registry(store).pending(self.name)
        pending = {"version": waiting.version, "trainer": waiting.trainer} if waiting else None
        return FactoryStatus(
            name=self.name,
            campaigns=campaigns,
            champion=champion,
            trials=totals,
            store=store.url,
            workers=workers,
            leaks=leaks,
            sealed=sealed,
            paused=paused,
            pending=pending,
            task=_task_of(store.list_campaigns(f.id)),
        )

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
        target = _target_name(self, version)
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


def _flagged(store: Store, campaign_id: int) -> list[dict[str, Any]]:
    """The candidates this campaign's gate kept out, with each suspicion and its figures."""
    return [
        {"trial": e.trial_id, "suspicions": e.data.get("suspicions", [])}
        for e in store.list_events(campaign_id=campaign_id, kinds=("candidate_flagged",))
    ]


def _record_leaks(store: Store, factory_id: int, campaign_id: int, data: Dataset) -> None:
    """One ``leaked_feature`` event per column that gives the target away: the rule, the figure, the decision."""
    for leak in data.leaks:
        decision = (
            "kept as a feature because data.keep_leaky names it"
            if leak.kept
            else f"dropped from training (keep it on purpose with `data.keep_leaky: [{leak.feature}]`)"
        )
        store.append_event(
            kind="leaked_feature",
            reason=f"{leak.reason}; {decision}",
            factory_id=factory_id,
            campaign_id=campaign_id,
            data=leak.as_json(),
        )


def _target_name(factory: Factory, version: int | str) -> str:
    store = factory.store
    rec = store.get_model_version(store.get_factory(factory.name).id, version)
    return str(rec.lineage.get("target") or "prediction")


def _current_champion(registry: Registry, name: str) -> tuple[ModelVersionRecord, bytes] | None:
    try:
        return registry.load_bytes(name, "champion")
    except NotFoundError:
        return None
    except IntegrityError:
        raise


def _task_of(campaigns: list[CampaignRecord]) -> dict[str, Any] | None:
    done = [c.summary for c in campaigns if (c.summary or {}).get("task")]
    return {"task": done[-1]["task"], "reason": done[-1].get("task_reason", "")} if done else None


def _gated_bytes(registry: Registry, current: tuple[ModelVersionRecord, bytes], data: Dataset) -> bytes:
    """The champion as the gate should score it on this data: when it was refit on these very sealed rows,
    the model the gate passed before the refit (a model never faces rows it was trained on)."""
    rec, blob = current
    refit_info = rec.lineage.get("refit") or {}
    saw_test = "test" in str(refit_info.get("trained_on", "")).split("+")
    gated = str(refit_info.get("gated_artifact") or "")
    if saw_test and gated and rec.lineage.get("data_fingerprint") == data.fingerprint:
        with contextlib.suppress(DarkfabError):
            return registry.artifacts.get(gated)
    return blob


def _direction(spec: FactorySpec, data: Dataset, metric: str) -> Direction:
    if metric == spec.primary_metric(data.task):
        return spec.direction(data.task)
    return spec.metric_direction(metric)


def _custom_metrics(spec: FactorySpec) -> dict[str, CustomMetric]:
    """The factory file's own metrics, imported (Python caches the modules, so this is cheap to repeat)."""
    return load_custom_metrics(spec.objective.metrics)


def executor_options(spec: FactorySpec) -> dict[str, Any]:
    """Keyword options of the executor named by ``execution.backend``."""
    ex = spec.execution
    if ex.backend == "ray":
        return {
            "address": ex.address,
            "cpus_per_trial": ex.cpus_per_trial,
            "gpus_per_trial": ex.gpus_per_trial,
            "memory_mb": ex.memory_mb,
        }
    return {}


def reward_model(spec: FactorySpec, data: Dataset, store: Store | None = None) -> RewardModel:
    """The reward model a factory file declares, for the data's task; with ``objective.reward: learned`` and a
    ``store``, the weights of the last learned reward that passed its gate (the declared ones until then)."""
    weights = dict(spec.objective.weights)
    if store is not None and spec.objective.reward == "learned":
        from .teach import learned_weights

        try:
            fid = store.get_factory(spec.name).id
        except LookupError:
            fid = None
        learned = learned_weights(store, fid) if fid is not None else None
        weights = learned or weights
    return RewardModel(
        task=data.task,
        primary=spec.primary_metric(data.task),
        direction=spec.direction(data.task),
        weights=weights,
        constraints=list(spec.objective.constraints),
        references=_references(data),
        custom=_custom_metrics(spec),
    )


def _is_script(spec: FactorySpec, trainer: str) -> bool:
    return any(t.name == trainer and t.script for t in spec.trainers)


def _references(data: Dataset) -> dict[str, float]:
    if data.task != "regression":
        return {}
    base = compute_metrics("regression", data.y_valid, data.baseline_predictions(len(data.y_valid)), n_classes=0)
    return {k: float(base[k]) for k in ("rmse", "mae") if k in base and base[k] > 0}


def _ci(ci: Any) -> dict[str, float]:
    return {"score": float(ci.score), "low": float(ci.low), "high": float(ci.high)}
