"""Greedy ensemble selection (Caruana) over a run's best candidates, recorded as one more trial."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..evaluate import Evaluation, metric_value
from ..store import TrialRecord
from ..train import EnsembleModel, TrialOutput, greedy_weights, load_model

if TYPE_CHECKING:
    from ._coordinator import Coordinator

ENSEMBLE_POOL = 8  # best candidates of a run kept in memory for greedy ensemble selection


@dataclass(frozen=True)
class Member:
    """A completed trial kept for ensemble selection: its trainer, its rank, its answers on unseen rows, its model."""

    trainer: str
    rank: tuple[float, ...]
    valid: np.ndarray
    oof: np.ndarray | None
    folds: np.ndarray | None
    artifact: bytes
    train_seconds: float
    train_cpu_seconds: float


class EnsemblePool:
    """The best feasible candidates of one run, and the best of each trainer, in memory (a `darkfab worker`
    keeps none).

    The best of each trainer stays whatever its rank: a search that spends most of its trials on one cheap
    family (a hundred ridge penalties) would otherwise fill the pool with near copies of one model, and the
    selection would have nothing different to average.

    The coordinator adds no model made by a training script: the ensemble is built and loaded in its process,
    and loading such a model runs the script's code, which only the sandboxed workers may do.
    """

    def __init__(self, size: int = ENSEMBLE_POOL) -> None:
        self.size = size
        self.members: dict[int, Member] = {}

    def add(self, trial_id: int, evaluation: Evaluation, out: TrialOutput, *, trainer: str) -> None:
        if not evaluation.feasible or not math.isfinite(evaluation.value):
            return
        self.members[trial_id] = Member(
            trainer=trainer,
            rank=tuple(float(x) for x in evaluation.rank_key),
            valid=np.asarray(out.valid_predictions, dtype=float),
            oof=None if out.oof_predictions is None else np.asarray(out.oof_predictions, dtype=float),
            folds=out.oof_folds,
            artifact=out.artifact,
            train_seconds=float(out.train_seconds),
            train_cpu_seconds=float(out.train_cpu_seconds),
        )
        best_first = sorted(self.members, key=lambda k: self.members[k].rank, reverse=True)
        best_of: dict[str, int] = {}
        for k in best_first:
            best_of.setdefault(self.members[k].trainer, k)
        keep = {*best_first[: self.size], *best_of.values()}
        for k in [k for k in self.members if k not in keep]:
            del self.members[k]

    def build(self, run: Coordinator) -> TrialRecord | None:
        """Greedy ensemble selection, scored, rewarded and constrained like any candidate, so it reaches the gate
        only on its merits.

        Members are weighed on rows none of them was fitted on: their out-of-fold answers on the training rows
        (when the search cross-validated) and the validation split. None when fewer than two candidates are
        kept or the selection keeps a single member.
        """
        ids = sorted(self.members)
        members = [self.members[i] for i in ids]
        if len(members) < 2:
            return None
        data, metric = run.data, run.metric
        with_oof = all(m.oof is not None for m in members)
        y = np.concatenate([data.y_train, data.y_valid]) if with_oof else data.y_valid
        answers = [np.concatenate([m.oof, m.valid]) if m.oof is not None and with_oof else m.valid for m in members]
        maximize = run.spec.direction(run.task) == "maximize"

        def score(p: np.ndarray) -> float:
            got = metric_value(run.task, metric, y, p, n_classes=data.n_classes, custom=run.reward.custom)
            return got if got is not None and math.isfinite(got) else (-math.inf if maximize else math.inf)

        weights = greedy_weights(answers, score, maximize=maximize)
        chosen = [(i, m, w) for i, m, w in zip(ids, members, weights, strict=True) if w > 0]
        if len(chosen) < 2:
            return None
        output = _output(run, chosen, with_oof)
        evaluation = run.evaluate(output)
        shares = {str(i): round(w, 4) for i, _, w in chosen}
        on = "out-of-fold training rows and the validation split" if with_oof else "the validation split"
        t = run.store.add_trial(
            run.campaign.id,
            proposer="ensemble",
            trainer="ensemble",
            params={"members": [i for i, _, _ in chosen], "weights": [w for _, _, w in chosen]},
            reason=f"greedy ensemble selection over the {len(ids)} best candidates, weighed on {on}: {shares}",
            parents=tuple(i for i, _, _ in chosen),
            seed=run.spec.search.seed,
            start_as=run.owner,
            lease_s=run.lease_s,
        )
        digest, _ = run.artifacts.put(output.artifact)
        run.record_completed(
            t.id, evaluation, artifact_path=digest, resources={"wall_seconds": 0.0, "members": len(chosen)}
        )
        return run.store.get_trial(t.id)


def _output(run: Coordinator, chosen: list[tuple[int, Member, float]], with_oof: bool) -> TrialOutput:
    """The ensemble as a trial's output: its model, its answers on unseen rows, its latency timed here."""
    model = EnsembleModel([load_model(m.artifact) for _, m, _ in chosen], [w for _, _, w in chosen])
    X_valid = run.data.X_valid
    lat: list[float] = []
    for i in range(min(run.spec.execution.latency_rows, len(X_valid))):
        t0 = time.perf_counter()
        model.predict_raw(X_valid.iloc[[i]])
        lat.append((time.perf_counter() - t0) * 1000.0)
    t0 = time.perf_counter()
    valid = np.sum([w * m.valid for _, m, w in chosen], axis=0)
    model.predict_raw(X_valid)
    batch_ms = (time.perf_counter() - t0) * 1000.0 * 1000.0 / max(1, len(X_valid))
    oof = np.sum([w * np.asarray(m.oof) for _, m, w in chosen], axis=0) if with_oof else None
    return TrialOutput(
        valid_predictions=np.asarray(valid, dtype=float),
        artifact=model.to_bytes(),
        train_seconds=sum(m.train_seconds for _, m, _ in chosen),
        train_cpu_seconds=sum(m.train_cpu_seconds for _, m, _ in chosen),
        latency_ms=tuple(lat),
        batch_latency_ms=batch_ms,
        oof_predictions=None if oof is None else np.asarray(oof, dtype=float),
        oof_folds=chosen[0][1].folds if with_oof else None,
    )
