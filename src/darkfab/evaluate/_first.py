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

A large sealed set can fail a first champion too, where the signal is real but small (a data set on which the
best models beat the class shares by 4 points of accuracy, with a sealed draw that shows 0.5). There the
validation rows may carry it: the workers never see their labels, so the only thing that flatters a figure on
them is that the candidate is the best of the K the search tried. The gate then asks the validation rows the
same question with that selection priced in: the one-sided p-value of the gain (a normal approximation from the
bootstrap's spread) times K (a Bonferroni bound, valid however alike the candidates are) must be at most
``1 - confidence``, and the sealed rows must show a gain too, if not a confident one. The caller offers this
only for single models the factory built: a training script's code runs where labels might be within its
reach, and an ensemble's weights were chosen on the validation rows themselves.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from statistics import NormalDist
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

ONE_SD_LEVEL = NormalDist().cdf(1.0) - NormalDist().cdf(-1.0)
"""The central interval of one standard deviation either side: the gate's ``level`` for :class:`HeldOutEvidence`."""


@dataclass(frozen=True)
class SearchEvidence:
    """The candidate's score in the search and the feature-blind baseline's score on the same rows."""

    metric: str
    score: float
    baseline: float
    rows: int
    where: str  # the rows, in words


@dataclass(frozen=True)
class HeldOutEvidence:
    """The candidate against the baseline on the validation rows, and how many candidates it was picked from."""

    delta: float  # the gain (positive: better), as the gate counts it
    sd: float  # its bootstrap standard deviation
    rows: int
    searched: int
    metric: str
    min_improvement: float = 0.0  # the gain the gate asks for beyond the baseline

    @property
    def p_value(self) -> float:
        """One-sided: how likely a gain this large is from a candidate that beats the baseline by no more than
        ``min_improvement``."""
        excess = self.delta - self.min_improvement
        if not (math.isfinite(excess) and math.isfinite(self.sd)):
            return 1.0
        if self.sd <= 0.0:
            return 0.0 if excess > 0.0 else 1.0
        return 1.0 - NormalDist().cdf(excess / self.sd)


def held_out_evidence(verdict: GateVerdict, *, rows: int, searched: int) -> HeldOutEvidence:
    """From :func:`gate` run on the validation rows against the baseline with ``level=ONE_SD_LEVEL`` (so that
    half its interval is one standard deviation); ``searched``: the candidates the search picked it from."""
    return HeldOutEvidence(
        delta=verdict.delta,
        sd=(verdict.delta_high - verdict.delta_low) / 2.0,
        rows=rows,
        searched=max(1, searched),
        metric=verdict.metric,
        min_improvement=verdict.min_improvement,
    )


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
    verdict: GateVerdict,
    *,
    sealed_rows: int,
    evidence: SearchEvidence,
    direction: Direction,
    held_out: HeldOutEvidence | None = None,
) -> GateVerdict:
    """``verdict`` (the gate against the baseline, for a factory without a champion), passed on weaker
    evidence where the sealed set is small and the search's evidence is clear, or where the sealed set is
    large and the validation rows (``held_out``) show the gain even as the best of the search; unchanged
    otherwise, with the reason it was not passed that way added."""
    if verdict.passed:
        return verdict
    if sealed_rows >= WEAK_SEALED_ROWS:
        return verdict if held_out is None else _on_held_out(verdict, held_out)
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


def _on_held_out(verdict: GateVerdict, held: HeldOutEvidence) -> GateVerdict:
    m = held.metric
    bound = held.p_value * held.searched
    alpha = 1.0 - verdict.confidence
    validation = (
        f"on the {held.rows} validation rows (labels no trial sees) it beats the baseline by {_f(m, held.delta)} "
        f"(p = {held.p_value:.2g}; times the best of {held.searched} candidates searched: {min(bound, 1.0):.2g})"
    )
    if not bound <= alpha:
        why = f"{validation}, above {alpha:.2g}, so the gain could be the luck of the search"
        return replace(verdict, reason=f"{verdict.reason}; as a first champion: {why}")
    sealed = f"a gain of {_f(m, verdict.delta)} [{_f(m, verdict.delta_low)}, {_f(m, verdict.delta_high)}]"
    if not (math.isfinite(verdict.delta) and verdict.delta > verdict.min_improvement):
        why = f"{validation}, but the sealed rows show no gain ({sealed})"
        return replace(verdict, reason=f"{verdict.reason}; as a first champion: {why}")
    reason = (
        f"first champion on the validation rows' evidence: the sealed rows show {sealed} {m}, too little to pass "
        f"alone with {verdict.confidence:.2f} confidence; {validation}, at most {alpha:.2g} (a Bonferroni bound), "
        "so the gain holds with that confidence even as the best of the search; the next campaign must beat it "
        "with the usual evidence"
    )
    return replace(verdict, passed=True, reason=reason, weak_evidence=True)
