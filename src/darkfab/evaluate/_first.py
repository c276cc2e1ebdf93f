"""A factory's first champion when the sealed test set is too small to show a gain with confidence.

The gate asks ``P(gain over the feature-blind baseline > min_improvement) >= confidence`` on the sealed rows.
On a data set of a few dozen rows the sealed set holds ten or twenty of them, and the bootstrap interval of
any gain then spans zero whatever the model: no first candidate could pass, so a factory on a tiny data set
would never have a model at all. There, and only for a factory's first champion, the gate accepts weaker
evidence and says so: the candidate must (1) beat the baseline in the search's own score, which on small
data is cross-validated over the training folds and the validation rows (several times the sealed rows),
and (2) not be shown worse than the baseline on the sealed rows (the upper end of the gain's interval is not
below zero). Constraints and the suspicion probes are not relaxed, and a later campaign must beat this
champion with the usual evidence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from ..spec import METRICS, Direction
from ._gate import GateVerdict
from ._metrics import metric_value

if TYPE_CHECKING:
    from ..data import Dataset
    from ._custom import CustomMetric

WEAK_SEALED_ROWS = 100
"""Below this many sealed rows, a first champion may pass on the search's evidence (the module docstring)."""


@dataclass(frozen=True)
class SearchEvidence:
    """The candidate's score in the search and the feature-blind baseline's score on the same rows."""

    metric: str
    score: float
    baseline: float
    rows: int
    where: str  # the rows, in words


def search_evidence(
    data: Dataset, candidate_metrics: Mapping[str, float], metric: str, *, custom: Mapping[str, CustomMetric] | None
) -> SearchEvidence:
    """What the search saw of the candidate (``candidate_metrics``: its trial's metrics) against the
    baseline that predicts the training class shares or mean, scored on the rows the search scored it on."""
    cross_validated = "cv_folds" in candidate_metrics
    y = np.concatenate([data.y_train, data.y_valid]) if cross_validated else data.y_valid
    where = "the training folds and validation rows" if cross_validated else "the validation rows"
    got = metric_value(data.task, metric, y, data.baseline_predictions(len(y)), n_classes=data.n_classes, custom=custom)
    score = candidate_metrics.get(metric)
    return SearchEvidence(
        metric=metric,
        score=math.nan if score is None else float(score),
        baseline=math.nan if got is None else float(got),
        rows=len(y),
        where=where,
    )


def _f(metric: str, x: float) -> str:
    info = METRICS.get(metric)
    return f"{x:.3f}" if info is not None and info.bounded else f"{x:.4g}"


def first_champion(
    verdict: GateVerdict, *, sealed_rows: int, evidence: SearchEvidence, direction: Direction
) -> GateVerdict:
    """``verdict`` (the gate against the baseline, for a factory without a champion), passed on weaker
    evidence where the sealed set is small and the search's evidence is clear; unchanged otherwise, with
    the reason it was not passed that way added when the sealed set was small."""
    if verdict.passed or sealed_rows >= WEAK_SEALED_ROWS:
        return verdict
    m = verdict.metric
    sign = 1.0 if direction == "maximize" else -1.0
    search_gain = sign * (evidence.score - evidence.baseline)
    small = (
        f"the sealed test holds {sealed_rows} rows (fewer than {WEAK_SEALED_ROWS}), too few to show a gain over "
        f"the baseline with {verdict.confidence:.2f} confidence"
    )
    if not math.isfinite(verdict.candidate.score):
        return verdict
    if not (math.isfinite(search_gain) and search_gain > verdict.min_improvement):
        why = (
            f"{small}, and in the search its {m} {_f(m, evidence.score)} does not beat the baseline's "
            f"{_f(m, evidence.baseline)} on {evidence.where} ({evidence.rows} rows) either"
        )
        return replace(verdict, reason=f"{verdict.reason}; as a first champion: {why}")
    if math.isfinite(verdict.delta_high) and verdict.delta_high < 0.0:
        why = (
            f"{small}, and though it beat the baseline in the search, the sealed rows show it worse "
            f"(gain {_f(m, verdict.delta)}, interval [{_f(m, verdict.delta_low)}, {_f(m, verdict.delta_high)}])"
        )
        return replace(verdict, reason=f"{verdict.reason}; as a first champion: {why}")
    reason = (
        f"first champion on weak evidence: {small} (sealed {m} {_f(m, verdict.candidate.score)} against the "
        f"baseline's {_f(m, verdict.champion.score if verdict.champion else math.nan)}, gain interval "
        f"[{_f(m, verdict.delta_low)}, {_f(m, verdict.delta_high)}], so not shown worse); it passes because in "
        f"the search its {m} {_f(m, evidence.score)} beat the baseline's {_f(m, evidence.baseline)} on "
        f"{evidence.where} ({evidence.rows} rows), a figure that flatters the best of a search; the next "
        "campaign must beat it with the usual evidence"
    )
    return replace(verdict, passed=True, reason=reason, weak_evidence=True)
