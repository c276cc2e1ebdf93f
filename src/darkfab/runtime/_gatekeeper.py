"""The gate stage of a campaign: screen the best candidates, hold the winner against the champion on the sealed
rows, and register it. The decisions are :func:`darkfab.evaluate.select_candidate` and
:func:`darkfab.evaluate.gate`; this module runs the models, records the events and registers the version.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..data import JITTER, Dataset
from ..errors import DarkfabError, NotFoundError
from ..evaluate import (
    ONE_SD_LEVEL,
    WEAK_SEALED_ROWS,
    Answers,
    Flagged,
    GateVerdict,
    Screening,
    best_first_key,
    first_champion,
    gate,
    held_out_evidence,
    metric_value,
    score_with_ci,
    search_evidence,
    select_candidate,
)
from ..events import EventKind
from ..execute import Executor, JobDone, JobReport, PredictJob
from ..registry import PENDING, Registry
from ..results import (
    BeatenModel,
    ChampionSummary,
    FlaggedCandidate,
    GateOutcome,
    MemorizationProbe,
    RefitRecord,
    SealedScore,
    SealedSetRef,
)
from ..spec import FactorySpec
from ..store import CampaignRecord, ModelVersionRecord, Store, TrialRecord
from ._lineage import lineage_of
from ._parts import custom_metrics, is_script
from ._refit import refit_winner
from ._sealed import sealed_set
from ._views import flagged_of

Champion = tuple[ModelVersionRecord, bytes]


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


@dataclass(frozen=True)
class GateContext:
    spec: FactorySpec
    store: Store
    registry: Registry
    executor: Executor
    campaign: CampaignRecord
    data: Dataset
    metric: str


class GateKeeper:
    """Runs the gate of one campaign; :meth:`decide` returns the outcome and the champion after it."""

    def __init__(self, ctx: GateContext) -> None:
        self.ctx = ctx
        self.fid = ctx.store.get_factory(ctx.spec.name).id
        self.current = current_champion(ctx.registry, ctx.spec.name)
        self._read: tuple[str, bytes] = ("", b"")  # the artifact screened last: the winner, when one passes

    def decide(self) -> tuple[GateOutcome, ChampionSummary | None]:
        store, campaign = self.ctx.store, self.ctx.campaign
        done = [t for t in store.list_trials(campaign_id=campaign.id, states=("completed",)) if t.artifact_path]
        task = self.ctx.data.task
        done.sort(
            key=lambda t: best_first_key(task, feasible=t.feasible, reward=t.reward, metrics=t.metrics), reverse=True
        )
        feasible = [t for t in done if t.feasible]
        selection = select_candidate(
            feasible,
            self._answers,
            value_of=lambda t: t.value,
            screening=self._screening(),
            on_flagged=self._record_flagged,
        )
        if selection.picked is None or selection.test_predictions is None:
            return self._nothing_passed(done, feasible)
        cand = selection.picked
        champ_pred, beat = self._champion_answers()
        verdict = self._verdict(cand, selection.test_predictions, champ_pred, beat)
        if self.current is None:  # a first champion may pass on weaker evidence, said so (evaluate/_first.py)
            verdict = self._first_champion(verdict, cand, selection.valid_predictions)
        beat = replace(beat, score=verdict.champion.score if verdict.champion else None)
        outcome = self._record_verdict(cand, verdict, beat, selection.probe)
        if not verdict.passed:
            scored = verdict.champion if beat.kind == "champion" else None  # the gate scored it just now
            return outcome, self.champion_summary(promoted=False, scored=scored)
        return self._register(cand, verdict, outcome)

    # -- screening -----------------------------------------------------------------------------
    def _screening(self) -> Screening:
        spec, data, metric = self.ctx.spec, self.ctx.data, self.ctx.metric
        direction = spec.direction(data.task)
        plain = [
            t.value
            for t in self.ctx.store.list_trials(campaign_id=self.ctx.campaign.id, states=("completed",))
            if t.value is not None and not is_script(spec, t.trainer)
        ]
        base_valid = data.baseline_predictions(len(data.y_valid))
        reference: float | None
        if plain:
            reference = max(plain) if direction == "maximize" else min(plain)
        else:
            reference = metric_value(
                data.task, metric, data.y_valid, base_valid, n_classes=data.n_classes, custom=custom_metrics(spec)
            )
        return Screening(
            task=data.task,
            metric=metric,
            direction=direction,
            y_valid=data.y_valid,
            y_test=data.y_test,
            n_classes=data.n_classes,
            baseline_test=data.baseline_predictions(len(data.y_test)),
            baseline_valid=base_valid,
            reference_score=reference,
            jitter=JITTER,
            n_boot=spec.gate.bootstrap,
            seed=spec.search.seed,
            custom=custom_metrics(spec),
        )

    def _answers(self, cand: TrialRecord) -> Answers:
        executor = self.ctx.executor
        blob = self._artifact(cand)
        test = predict_split(executor, blob, "test")
        valid = predict_split(executor, blob, "valid")
        try:
            return Answers(valid=valid, test=test, perturbed=predict_split(executor, blob, "test_perturbed"))
        except (RuntimeError, TimeoutError) as err:
            return Answers(valid=valid, test=test, perturbed=None, perturbed_error=str(err))

    def _artifact(self, cand: TrialRecord) -> bytes:
        path = cand.artifact_path or ""
        if self._read[0] != path:
            self._read = (path, self.ctx.registry.artifacts.get(path))
        return self._read[1]

    def _record_flagged(self, flagged: Flagged[TrialRecord]) -> None:
        cand = flagged.candidate
        self.ctx.store.append_event(
            kind=EventKind.CANDIDATE_FLAGGED,
            reason="; ".join(f.reason for f in flagged.suspicions),
            factory_id=cand.factory_id,
            campaign_id=self.ctx.campaign.id,
            trial_id=cand.id,
            data={"suspicions": [f.as_json() for f in flagged.suspicions]},
        )

    def _nothing_passed(
        self, done: list[TrialRecord], feasible: list[TrialRecord]
    ) -> tuple[GateOutcome, ChampionSummary | None]:
        if feasible:
            reason = "every feasible candidate was flagged as suspicious (see the candidate_flagged events)"
        elif done:
            reason = "no feasible candidate in this campaign"
        else:
            reason = "no completed candidate in this campaign"
        spec, store = self.ctx.spec, self.ctx.store
        wear = sealed_set(store, self.fid, spec, self.ctx.data)
        uses = wear.uses + 1 if feasible else wear.uses  # flagging read it
        store.append_event(
            kind=EventKind.GATE_VERDICT,
            reason=reason,
            factory_id=self.fid,
            campaign_id=self.ctx.campaign.id,
            data={"passed": False, **(wear.summary(uses=uses) if feasible else {})},
        )
        champ = self.champion_summary(promoted=False) if self.current else None
        outcome = GateOutcome(
            passed=False,
            reason=reason,
            sealed_uses=uses,
            sealed_budget=wear.budget,
            sealed_set=SealedSetRef(wear.fingerprint, wear.split_seed),
            flagged=self._flagged(),
        )
        return outcome, champ

    def _flagged(self) -> tuple[FlaggedCandidate, ...]:
        return tuple(
            FlaggedCandidate(f["trial"], tuple(f["suspicions"]))
            for f in flagged_of(self.ctx.store, self.ctx.campaign.id)
        )

    # -- the verdict ---------------------------------------------------------------------------
    def _champion_answers(self) -> tuple[np.ndarray, BeatenModel]:
        """The champion's answers on the sealed rows (the trivial model's when there is none), and what it is."""
        data, current = self.ctx.data, self.current
        why = "no champion yet"
        if current is not None:
            try:
                champ_pred = predict_split(self.ctx.executor, gated_bytes(self.ctx.registry, current, data), "test")
                return champ_pred, BeatenModel("champion", version=current[0].version, trainer=current[0].trainer)
            except RuntimeError as err:
                why = f"champion v{current[0].version} cannot score the data: {err}"
        name = "class shares of the training data" if data.task == "classification" else "training mean"
        return data.baseline_predictions(len(data.y_test)), BeatenModel("baseline", why=why, name=name)

    def _verdict(
        self, cand: TrialRecord, cand_pred: np.ndarray, champ_pred: np.ndarray, beat: BeatenModel
    ) -> GateVerdict:
        spec, data = self.ctx.spec, self.ctx.data
        verdict = self._gate_on(data.y_test, cand_pred, champ_pred)
        if self.current is not None and beat.kind == "champion":
            from ._teach import reward_verdict

            champion = self.current[0]
            verdict = reward_verdict(spec, self.ctx.store, data, verdict, cand, cand_pred, champion, champ_pred)
        return verdict

    def _gate_on(
        self, y_true: np.ndarray, cand_pred: np.ndarray, champ_pred: np.ndarray, level: float = 0.95
    ) -> GateVerdict:
        """The factory's gate (its metric, direction and settings) on one set of rows."""
        spec, g = self.ctx.spec, self.ctx.spec.gate
        return gate(
            task=self.ctx.data.task,
            metric=self.ctx.metric,
            direction=spec.direction(self.ctx.data.task),
            y_true=y_true,
            candidate=cand_pred,
            champion=champ_pred,
            min_improvement=g.min_improvement,
            confidence=g.confidence,
            n_boot=g.bootstrap,
            seed=spec.search.seed,
            level=level,
            custom=custom_metrics(spec),
        )

    def _searched(self) -> int:
        """The candidates the factory's campaigns have picked their winners from so far: a factory that tried
        again after a refused first champion looked at the validation rows that many times."""
        return len(self.ctx.store.list_trials(factory_id=self.fid, states=("completed",)))

    def _first_champion(self, verdict: GateVerdict, cand: TrialRecord, valid_pred: np.ndarray | None) -> GateVerdict:
        """The gate against the baseline, passed on the search's evidence where the sealed rows cannot show it."""
        if verdict.passed:
            return verdict
        spec, data = self.ctx.spec, self.ctx.data
        held_out, script = None, is_script(spec, cand.trainer)
        fitted_there = cand.trainer == "ensemble"  # its weights were chosen on the validation rows
        if valid_pred is not None and not script and not fitted_there:
            baseline = data.baseline_predictions(len(data.y_valid))
            on_valid = self._gate_on(data.y_valid, valid_pred, baseline, level=ONE_SD_LEVEL)
            held_out = held_out_evidence(on_valid, rows=len(data.y_valid), searched=self._searched())
        evidence = search_evidence(data, cand.metrics or {}, self.ctx.metric, custom=custom_metrics(spec))
        verdict = first_champion(
            verdict,
            sealed_rows=len(data.y_test),
            evidence=evidence,
            direction=spec.direction(data.task),
            held_out=held_out,
        )
        if (script or fitted_there) and not verdict.passed and len(data.y_test) >= WEAK_SEALED_ROWS:
            why = (
                "a training script's model is not passed on the validation rows (they vouch only for models "
                "the factory built), so the sealed rows must show its gain"
                if script
                else "an ensemble is not passed on the validation rows (its weights were chosen on them, so its "
                "figure there flatters it beyond the search's count), so the sealed rows must show its gain"
            )
            verdict = replace(verdict, reason=f"{verdict.reason}; as a first champion: {why}")
        return verdict

    def _record_verdict(
        self, cand: TrialRecord, verdict: GateVerdict, beat: BeatenModel, probe: dict[str, Any]
    ) -> GateOutcome:
        store = self.ctx.store
        wear = sealed_set(store, self.fid, self.ctx.spec, self.ctx.data)
        outcome = GateOutcome(
            passed=bool(verdict.passed),
            reason=verdict.reason,
            trial=cand.id,
            delta=verdict.delta,
            p_better=verdict.p_better,
            beat=beat if verdict.passed else None,
            candidate=sealed_score(verdict.candidate),
            champion=sealed_score(verdict.champion) if verdict.champion else None,
            memorization=MemorizationProbe(**probe) if probe else None,  # a picked candidate raised no suspicion
            flagged=self._flagged(),
            weak_evidence=verdict.weak_evidence,
            sealed_uses=wear.uses + 1,
            sealed_budget=wear.budget,
            sealed_set=SealedSetRef(wear.fingerprint, wear.split_seed),
        )
        store.append_event(
            kind=EventKind.GATE_VERDICT,
            reason=verdict.reason,
            factory_id=self.fid,
            campaign_id=self.ctx.campaign.id,
            trial_id=cand.id,
            data=outcome.to_dict(),
        )
        return outcome

    # -- registration --------------------------------------------------------------------------
    def _register(
        self, cand: TrialRecord, verdict: GateVerdict, outcome: GateOutcome
    ) -> tuple[GateOutcome, ChampionSummary]:
        spec, data, store = self.ctx.spec, self.ctx.data, self.ctx.store
        current = self.current
        sealed = {"metric": self.ctx.metric, **sealed_score(verdict.candidate).to_dict()}
        lineage = lineage_of(spec, self.ctx.campaign, data, cand, current[0] if current else None, outcome)
        gated = self._artifact(cand)
        model_bytes, refit_info = refit_winner(spec, store, data, cand, gated)
        lineage["refit"] = refit_info.to_dict()
        lineage["gated"] = {"artifact": cand.artifact_path, "valid": cand.metrics, "sealed_test": sealed}
        outcome = replace(outcome, refit=refit_info)
        alias = "champion" if current is None or spec.deploy.mode == "direct" else "challenger"
        why = f"passed the gate: {verdict.reason}"
        why += "" if alias == "champion" else f"; {spec.deploy.mode} against the champion before promotion"
        then = alias
        if spec.gate.approval == "required":  # registered, not promoted: approve() makes the same move later
            lineage["approval"] = {"required": True, "then": then}
            alias, why = PENDING, f"{why}; waits for a person's approval (gate.approval: required) to become {alias}"
        version = self.ctx.registry.register(
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
                kind=EventKind.APPROVAL_REQUESTED,
                reason=f"version {version.version} {why}; fix: `darkfab approve {version.version}` or reject it",
                factory_id=self.fid,
                campaign_id=self.ctx.campaign.id,
                trial_id=cand.id,
                data={"version": version.version, "then": then, "gate": verdict.reason},
            )
        return outcome, ChampionSummary(
            version=version.version,
            trainer=cand.trainer,
            params=cand.params,
            trial_id=cand.id,
            metrics={"valid": cand.metrics, "sealed_test": sealed},
            promoted_now=alias == "champion",
            alias=alias,
            refit=refit_info,
        )

    def champion_summary(self, *, promoted: bool, scored: Any = None) -> ChampionSummary | None:
        """The current champion, with its sealed-test score on this campaign's data (``scored`` if the gate has it)."""
        if self.current is None:
            return None
        spec, data, rec = self.ctx.spec, self.ctx.data, self.current[0]
        try:
            if scored is None:
                pred = predict_split(self.ctx.executor, gated_bytes(self.ctx.registry, self.current, data), "test")
                scored = score_with_ci(
                    data.task,
                    self.ctx.metric,
                    data.y_test,
                    pred,
                    n_boot=spec.gate.bootstrap,
                    seed=spec.search.seed,
                    custom=custom_metrics(spec),
                )
            sealed: dict[str, Any] = {"metric": self.ctx.metric, **sealed_score(scored).to_dict()}
        except RuntimeError:
            sealed = dict(rec.metrics.get("sealed_test", {}))
        return ChampionSummary(
            version=rec.version,
            trainer=rec.trainer,
            params=rec.params,
            trial_id=rec.trial_id,
            metrics={"valid": rec.metrics.get("valid", {}), "sealed_test": sealed},
            promoted_now=promoted,
            refit=RefitRecord.from_dict(rec.lineage["refit"]) if rec.lineage.get("refit") else None,
        )


def current_champion(registry: Registry, name: str) -> Champion | None:
    try:
        return registry.load_bytes(name, "champion")
    except NotFoundError:
        return None


def gated_bytes(registry: Registry, current: Champion, data: Dataset) -> bytes:
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


def sealed_score(ci: Any) -> SealedScore:
    return SealedScore(score=float(ci.score), low=float(ci.low), high=float(ci.high))
