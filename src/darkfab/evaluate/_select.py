"""Selection: the best candidate that raises no suspicion, screened on the sealed rows before the gate.

Pure: the caller hands the candidates best first and a ``predict`` function that returns a candidate's answers
on the validation rows, the sealed rows and jittered copies of the sealed rows; this module scores them and
decides. Nothing here reads the store or runs a model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import numpy as np

from ..spec import Direction, TaskKind
from ._custom import CustomMetric
from ._gate import ScoreCI, score_with_ci
from ._metrics import metric_value
from ._suspicion import Suspicion, memorization, suspicions

C = TypeVar("C")


def best_first_key(
    task: TaskKind, *, feasible: bool | None, reward: float | None, metrics: Mapping[str, float] | None
) -> tuple[bool, float, float]:
    """Sort key (descending) of a candidate for :func:`select_candidate`: feasible ones first, then by reward,
    and among classifiers of equal reward the one with the lower validation log loss first. Accuracy on a few
    hundred rows ties often (70 of 600 trials at the best figure but two on statsmodels' ``fair``); of two
    equally accurate models the surer one is the better bet, where the earliest one was picked before."""
    surety = -math.inf
    if task == "classification" and metrics is not None:
        loss = metrics.get("log_loss")
        if loss is not None and math.isfinite(loss):
            surety = -float(loss)
    return bool(feasible), reward if reward is not None else -math.inf, surety


@dataclass(frozen=True)
class Answers:
    """One candidate's predictions on unlabelled rows; ``perturbed`` is None when it could not score the copies."""

    valid: np.ndarray
    test: np.ndarray
    perturbed: np.ndarray | None = None
    perturbed_error: str = ""


@dataclass(frozen=True)
class Screening:
    """The labels and settings every candidate is screened against."""

    task: TaskKind
    metric: str
    direction: Direction
    y_valid: np.ndarray
    y_test: np.ndarray
    n_classes: int
    baseline_test: np.ndarray  # the trivial model's answers on the sealed rows
    reference_score: float | None  # the best validation score of code the factory wrote (for "too good")
    jitter: float
    n_boot: int
    seed: int
    custom: dict[str, CustomMetric] = field(default_factory=dict)
    baseline_valid: np.ndarray | None = None  # the trivial model's answers on the validation rows

    def score(self, y_true: np.ndarray, predictions: np.ndarray) -> float | None:
        """The factory's metric (its own one included) of ``predictions``; None where it is undefined."""
        return metric_value(self.task, self.metric, y_true, predictions, n_classes=self.n_classes, custom=self.custom)

    @functools.cached_property
    def baseline_sealed(self) -> float | None:
        """The trivial model's score on the sealed rows, the same for every candidate screened."""
        return self.score(self.y_test, self.baseline_test)

    @functools.cached_property
    def baseline_gap(self) -> float:
        """How much better the trivial model does on the validation rows than on the sealed rows (0 unknown);
        the same for every candidate screened, so computed once."""
        if self.baseline_valid is None:
            return 0.0
        v, t = self.score(self.y_valid, self.baseline_valid), self.baseline_sealed
        if v is None or t is None:
            return 0.0
        return float(v - t) if self.direction == "maximize" else float(t - v)


@dataclass(frozen=True)
class Flagged(Generic[C]):
    candidate: C
    suspicions: tuple[Suspicion, ...]


@dataclass(frozen=True)
class Selection(Generic[C]):
    """The picked candidate (None when every one was flagged), its sealed answers and probe figures."""

    picked: C | None
    test_predictions: np.ndarray | None
    probe: dict[str, Any]
    flagged: tuple[Flagged[C], ...]
    valid_predictions: np.ndarray | None = None


def probe_memorization(s: Screening, answers: Answers, sealed: ScoreCI) -> tuple[dict[str, Any], Suspicion | None]:
    """The candidate scored on jittered copies of the sealed rows: its figures and a suspicion or None."""
    if answers.perturbed is None:  # a model that cannot score the copies is not trusted either
        reason = f"could not be scored on perturbed copies of the sealed rows: {answers.perturbed_error}"
        return {"error": reason}, Suspicion("memorization", reason, {})
    # scored by the factory's metric, its own one included (a custom metric once left the probe out)
    perturbed, base = s.score(s.y_test, answers.perturbed), s.baseline_sealed
    if perturbed is None or base is None:
        return {}, None
    found = memorization(
        sealed_score=float(sealed.score),
        perturbed_score=float(perturbed),
        baseline_score=float(base),
        direction=s.direction,
        noise=float(sealed.high - sealed.low),
    )
    figures = {
        "sealed_score": float(sealed.score),
        "perturbed_score": float(perturbed),
        "baseline_score": float(base),
        "jitter": s.jitter,
        "flagged": found is not None,
    }
    return figures, found


def screen(s: Screening, answers: Answers, valid_score: float) -> tuple[list[Suspicion], dict[str, Any]]:
    """Every suspicion one candidate raises (leak, exploit, validation far above the sealed test, memorization)."""
    ci = score_with_ci(s.task, s.metric, s.y_test, answers.test, n_boot=s.n_boot, seed=s.seed, custom=s.custom)
    found = suspicions(
        task=s.task,
        direction=s.direction,
        y_valid=s.y_valid,
        valid_predictions=answers.valid,
        valid_score=valid_score,
        test=ci,
        reference_score=s.reference_score,
        shared_gap=s.baseline_gap,
    )
    figures, memorized = probe_memorization(s, answers, ci)
    if memorized is not None:
        found.append(memorized)
    return found, figures


def select_candidate(
    candidates: Sequence[C],
    predict: Callable[[C], Answers],
    *,
    value_of: Callable[[C], float | None],
    screening: Screening,
    on_flagged: Callable[[Flagged[C]], None] | None = None,
) -> Selection[C]:
    """The first of ``candidates`` (best first) that raises no suspicion; those before it are flagged.

    ``on_flagged`` hears of each flagged candidate as soon as it is screened (to record it before the next).
    """
    flagged: list[Flagged[C]] = []
    for cand in candidates:
        value = value_of(cand)
        if value is None:
            continue
        answers = predict(cand)
        found, figures = screen(screening, answers, float(value))
        if not found:
            return Selection(cand, answers.test, figures, tuple(flagged), answers.valid)
        flagged.append(Flagged(cand, tuple(found)))
        if on_flagged is not None:
            on_flagged(flagged[-1])
    return Selection(None, None, {}, tuple(flagged))
