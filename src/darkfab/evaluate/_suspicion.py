"""Reward-hacking defences beyond the sealed labels: leaked features, too-good validation, overfit to it.

Pure functions over arrays the factory already holds. Each finding is a :class:`Suspicion` whose ``reason``
is written for the audit log. A flagged candidate is kept out of the gate; the factory tries the next one.

- :func:`leaky_features`: a training column that equals the target, determines it, separates the classes
  by a threshold, or is a near-exact monotone or linear function of a numeric target (rules in data).
- :func:`too_good_on_validation`: validation predictions that match the labels perfectly while a reference
  (the best plain trainer of the campaign, or the baseline) is far from perfect.
- :func:`validation_far_above_test`: the validation score beats the sealed-test score by more than chance.
- :func:`memorization`: the sealed-test score collapses on lightly perturbed copies of the sealed rows.
- :func:`suspicions`: the candidate-level checks together, for the gate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..data import find_leaks
from ..spec import TaskKind
from ._gate import ScoreCI
from ._metrics import predicted_labels

SuspicionKind = Literal["leaked_feature", "too_good_on_validation", "validation_far_above_test", "memorization"]
Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Suspicion:
    kind: SuspicionKind
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, **self.detail}


def leaky_features(X: pd.DataFrame, y: Any, *, task: TaskKind, max_unique_share: float = 0.5) -> list[Suspicion]:
    """Columns of the training rows that give the target away (the rules of :func:`darkfab.data.find_leaks`).

    ``y``: the training labels (or values). Each finding names the feature, the rule and the figure.
    """
    return [
        Suspicion("leaked_feature", leak.reason, {"feature": leak.feature, "rule": leak.rule, "figure": leak.figure})
        for leak in find_leaks(X, y, task=task, max_unique_share=max_unique_share)
    ]


def _better(a: float, b: float, direction: Direction) -> float:
    """How much better ``a`` is than ``b`` (positive: better), in metric units."""
    return a - b if direction == "maximize" else b - a


def too_good_on_validation(
    *,
    task: TaskKind,
    y_valid: Any,
    predictions: Any,
    score: float,
    reference_score: float | None,
    direction: Direction,
    min_gap: float = 0.05,
    max_wrong: int = 2,
    max_wrong_share: float = 0.02,
    min_r2: float = 0.999,
) -> Suspicion | None:
    """(Near-)perfect validation predictions that a reference trained the honest way cannot explain.

    ``reference_score``: the same metric for the best plain (non-generated) candidate, or the baseline.
    Near-perfect: at most ``max_wrong`` rows (or ``max_wrong_share`` of them) wrong for classification, an R²
    of ``min_r2`` for regression, so answering a row or two wrong on purpose does not hide a leak. Flagged
    when the candidate is near-perfect and beats the reference by more than ``min_gap`` (in metric units,
    relative to the reference's magnitude when that is above 1).
    """
    y = np.asarray(y_valid)
    if task == "classification":
        wrong = int(np.sum(predicted_labels(task, predictions) != y.astype(int)))
        perfect = wrong <= max(max_wrong, int(max_wrong_share * len(y)))
    else:
        p, t = np.asarray(predictions, dtype=float).reshape(-1), y.astype(float)
        spread = float(np.var(t))
        perfect = bool(np.allclose(p, t, atol=1e-9)) or (
            spread > 0 and float(np.mean((p - t) ** 2)) <= (1.0 - min_r2) * spread
        )
    if not perfect or reference_score is None:
        return None
    gap = _better(score, reference_score, direction)
    if gap <= min_gap * max(1.0, abs(reference_score)):
        return None
    return Suspicion(
        "too_good_on_validation",
        f"predicts (nearly) every validation row exactly, {gap:.4g} better than the reference "
        f"({reference_score:.4g}); "
        "a leak or an exploit is more likely than skill",
        {"score": score, "reference_score": reference_score},
    )


def validation_far_above_test(
    *,
    valid_score: float,
    test: ScoreCI | float,
    direction: Direction,
    min_gap: float = 0.05,
    relative: float = 0.1,
    shared_gap: float = 0.0,
) -> Suspicion | None:
    """The validation score beats the sealed-test score by more than the test's own uncertainty allows.

    The allowed gap is the largest of ``min_gap``, ``relative`` times the test score's magnitude, and the
    width of the test score's bootstrap interval (when ``test`` is the gate's ScoreCI), plus ``shared_gap``
    when it is positive: how much better the factory's trivial baseline does on the validation rows than on
    the sealed rows. A sealed split that is harder for every model (the baseline is the factory's own, no
    candidate's code touches it) widens the allowance by that much, so honest candidates are not all flagged
    and the gate left with a worse one; a candidate fitted to the validation rows still stands out beyond it.
    """
    ci = test if isinstance(test, ScoreCI) else None
    test_score = test.score if isinstance(test, ScoreCI) else float(test)
    own = max(min_gap, relative * abs(test_score), (ci.high - ci.low) if ci is not None else 0.0)
    shared = max(0.0, shared_gap) if np.isfinite(shared_gap) else 0.0
    allowed = own + shared
    gap = _better(valid_score, test_score, direction)
    if gap <= allowed:
        return None
    return Suspicion(
        "validation_far_above_test",
        f"validation score {valid_score:.4g} is {gap:.4g} better than the sealed-test score {test_score:.4g} "
        f"(allowed {allowed:.4g}"
        + (f", of which {shared:.4g} the baseline's own gap between the two" if shared else "")
        + "); the candidate fits the validation rows, not the task",
        {"valid_score": valid_score, "test_score": test_score, "gap": gap, "allowed": allowed, "shared_gap": shared},
    )


def memorization(
    *,
    sealed_score: float,
    perturbed_score: float,
    baseline_score: float,
    direction: Direction,
    max_share: float = 0.5,
    min_drop: float = 0.01,
    noise: float = 0.0,
) -> Suspicion | None:
    """The candidate's lead over the baseline on the sealed rows mostly vanishes on jittered copies of them.

    ``sealed_score``/``perturbed_score``: the metric on the sealed rows and on copies with numeric columns
    jittered by a small share of their spread (see :func:`darkfab.data.jittered`). Flagged when the drop is at
    least ``max_share`` of the lead over ``baseline_score`` and above both ``min_drop`` (metric units, relative
    when the score's magnitude is above 1) and ``noise`` (the width of the sealed score's bootstrap interval, so
    one row flipping on a handful of sealed rows is not mistaken for memorization). Honest built-in trainers lose at most about 6% of their lead on the
    bundled data sets at 5% jitter (one row of iris's 30 sealed rows); a model that looks rows up by their exact
    values loses all of it.
    """
    lead = _better(sealed_score, baseline_score, direction)
    drop = _better(sealed_score, perturbed_score, direction)
    share = drop / lead if lead > 0 else 0.0
    figures = {
        "sealed_score": sealed_score,
        "perturbed_score": perturbed_score,
        "baseline_score": baseline_score,
        "drop": drop,
        "share_of_lead_lost": share,
        "allowed_share": max_share,
        "noise": noise,
    }
    if lead <= 0 or share < max_share or drop <= max(min_drop * max(1.0, abs(sealed_score)), noise):
        return None
    return Suspicion(
        "memorization",
        f"sealed-test score {sealed_score:.4g} falls to {perturbed_score:.4g} on lightly perturbed copies of the "
        f"same rows, losing {share:.0%} of its lead over the baseline ({baseline_score:.4g}; allowed "
        f"{max_share:.0%}); the model recognises rows rather than learning the task",
        figures,
    )


def suspicions(
    *,
    task: TaskKind,
    direction: Direction,
    y_valid: Any,
    valid_predictions: Any,
    valid_score: float,
    test: ScoreCI | float | None = None,
    reference_score: float | None = None,
    shared_gap: float = 0.0,
) -> list[Suspicion]:
    """The candidate-level checks the gate runs before it compares a candidate with the champion."""
    found: list[Suspicion] = []
    too_good = too_good_on_validation(
        task=task,
        y_valid=y_valid,
        predictions=valid_predictions,
        score=valid_score,
        reference_score=reference_score,
        direction=direction,
    )
    if too_good is not None:
        found.append(too_good)
    if test is not None:
        far = validation_far_above_test(valid_score=valid_score, test=test, direction=direction, shared_gap=shared_gap)
        if far is not None:
            found.append(far)
    return found
