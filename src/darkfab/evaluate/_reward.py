"""The reward model: metrics in, one scalar plus feasibility and a breakdown out.

The formula::

    w_m     = weights[m] / sum(weights)           (the primary metric gets weight 1 unless weights name it)
    reward  = sum over weighted metrics m of  w_m * u_m(metrics[m])

``u_m`` maps each metric onto "higher is better" on a comparable scale (about 0..1 for usual values):

==================================================  ======================================
metric                                              utility ``u(x)``
==================================================  ======================================
bounded, maximise (accuracy, f1, roc_auc, ...)      ``x``
bounded, minimise (ece, demographic_parity_diff..)  ``1 - x``
``log_loss``                                        ``1 / (1 + x)``
``rmse``, ``mae``                                   ``1 - x / ref`` (ref: e.g. the baseline's error)
``r2``                                              ``x``
latency, size and time metrics                      ``1 / (1 + x / ref)``
any other minimise metric (``fairness_gap``)        ``1 / (1 + x / ref)``, ref 1
==================================================  ======================================

Default references: ``rmse`` and ``mae`` 1, ``latency_p50_ms`` and ``latency_p95_ms`` 10 ms,
``batch_latency_ms`` 100 ms, ``model_size_mb`` 10 MB, ``train_seconds`` and ``train_cpu_seconds`` 60 s;
``references`` overrides any of them by metric name. When the declared direction of the primary metric is
the opposite of the catalogue's, its utility is ``1 - u(x)``.

Feasibility: every constraint must hold, and every weighted or constrained metric must be present and not
NaN. Each broken rule is one line in ``violations``. Ranking (:attr:`Evaluation.rank_key`, sorted
descending): every feasible candidate above every infeasible one; feasible ones by reward; infeasible ones
by ``violation``, the sum of relative violations ``(x - limit) / |limit|`` (``|limit|`` is replaced by 1
when the limit is 0), where a missing or NaN metric counts :data:`MISSING_PENALTY`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import SpecError
from ..spec import METRICS, Constraint, Direction, TaskKind, metric_names

if TYPE_CHECKING:
    from ._custom import CustomMetric

MISSING_PENALTY = 1000.0
"""The relative violation a missing or NaN metric counts, so that it ranks below any measured one."""

DEFAULT_REFERENCES: dict[str, float] = {
    "rmse": 1.0,
    "mae": 1.0,
    "latency_p50_ms": 10.0,
    "latency_p95_ms": 10.0,
    "batch_latency_ms": 100.0,
    "model_size_mb": 10.0,
    "train_seconds": 60.0,
    "train_cpu_seconds": 60.0,
}

_ERROR_METRICS = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class Evaluation:
    """The reward model's verdict on one candidate's metrics."""

    metrics: dict[str, float]
    value: float  # the primary metric (NaN when missing)
    reward: float
    feasible: bool
    violations: tuple[str, ...] = ()
    breakdown: dict[str, dict[str, float]] = field(default_factory=dict)
    violation: float = 0.0  # sum of relative violations; 0 when feasible

    @property
    def rank_key(self) -> tuple[int, float]:
        """Sort descending: feasible before infeasible, then by reward, or by how little is violated."""
        if self.feasible:
            return (1, self.reward if not math.isnan(self.reward) else -math.inf)
        return (0, -self.violation)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class RewardModel:
    """Turns a metrics dict into an :class:`Evaluation`; the formula is in the module docstring."""

    def __init__(
        self,
        *,
        task: TaskKind,
        primary: str,
        direction: Direction,
        weights: Mapping[str, float],
        constraints: Sequence[Constraint],
        references: Mapping[str, float] | None = None,
        custom: Mapping[str, CustomMetric] | None = None,
    ) -> None:
        self.custom: dict[str, CustomMetric] = dict(custom or {})
        valid = [*metric_names(task), *self.custom]
        if task not in ("classification", "regression"):
            raise SpecError(f"task must be 'classification' or 'regression', got {task!r}")
        if primary not in valid:
            raise SpecError(f"the primary metric {primary!r} is not a {task} metric; choose one of: {', '.join(valid)}")
        if direction not in ("maximize", "minimize"):
            raise SpecError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
        raw = dict(weights)
        raw.setdefault(primary, 1.0)
        for name, w in raw.items():
            if name not in valid:
                raise SpecError(
                    f"objective.weights names {name!r}, which is not a {task} metric; choose among: {', '.join(valid)}"
                )
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise SpecError(f"objective.weights[{name!r}] must be a finite number >= 0, got {w!r}")
        total = float(sum(raw.values()))
        if total <= 0:
            raise SpecError(f"objective.weights add up to 0 ({raw}); give at least one metric a positive weight")
        for c in constraints:
            if c.metric not in valid:
                raise SpecError(
                    f"constraint {c} names {c.metric!r}, which is not a {task} metric; choose among: {', '.join(valid)}"
                )
        refs = dict(DEFAULT_REFERENCES)
        for name, ref in (references or {}).items():
            if not (isinstance(ref, (int, float)) and math.isfinite(ref) and ref > 0):
                raise SpecError(f"references[{name!r}] must be a finite number > 0, got {ref!r}")
            refs[name] = float(ref)
        self.task: TaskKind = task
        self.primary = primary
        self.direction: Direction = direction
        self.weights: dict[str, float] = {n: w / total for n, w in raw.items() if w > 0}
        self.constraints: tuple[Constraint, ...] = tuple(constraints)
        self.references: dict[str, float] = refs
        self._flip_primary = direction != self._direction(primary)

    def _direction(self, metric: str) -> Direction:
        own = self.custom.get(metric)
        return own.direction if own is not None else METRICS[metric].direction

    def utility(self, metric: str, x: float) -> float:
        """``x`` mapped onto "higher is better"; NaN stays NaN.

        A custom metric has no known scale: its value, negated when lower is better.
        """
        own = self.custom.get(metric)
        if own is not None:
            u = x if own.direction == "maximize" else -x
            return 1.0 - u if metric == self.primary and self._flip_primary else u
        info = METRICS[metric]
        if metric == "log_loss":
            u = 1.0 / (1.0 + x)
        elif metric in _ERROR_METRICS:
            u = 1.0 - x / self.references[metric]
        elif info.bounded:
            u = x if info.direction == "maximize" else 1.0 - x
        elif info.direction == "maximize":
            u = x
        else:
            u = 1.0 / (1.0 + x / self.references.get(metric, 1.0))
        if metric == self.primary and self._flip_primary:
            u = 1.0 - u
        return u

    def evaluate(self, metrics: Mapping[str, float]) -> Evaluation:
        """Reward, feasibility, violations and breakdown of one candidate's metrics."""
        violations: list[str] = []
        violation = 0.0
        breakdown: dict[str, dict[str, float]] = {}
        reward = 0.0
        for name, weight in self.weights.items():
            x = metrics.get(name)
            if x is None or math.isnan(x):
                what = "missing" if x is None else "NaN"
                violations.append(f"{name} is {what}, but it is weighted in the reward")
                violation += MISSING_PENALTY
                breakdown[name] = {"value": math.nan, "utility": math.nan, "weight": weight, "contribution": 0.0}
                continue
            u = self.utility(name, float(x))
            contribution = weight * u
            reward += contribution
            breakdown[name] = {"value": float(x), "utility": u, "weight": weight, "contribution": contribution}
        for c in self.constraints:
            x = metrics.get(c.metric)
            if x is None or math.isnan(x):
                what = "missing" if x is None else "NaN"
                violations.append(f"{c.metric} is {what}, so {c} cannot be checked")
                violation += MISSING_PENALTY
                continue
            if c.satisfied(x):
                continue
            violations.append(f"{c.metric} = {_fmt(x)} breaks {c}")
            scale = abs(c.value) if c.value != 0 else 1.0
            # a strict bound met with equality still breaks the rule; count it as a tiny violation
            violation += max(abs(x - c.value) / scale, 1e-12)
        value = metrics.get(self.primary)
        return Evaluation(
            metrics=dict(metrics),
            value=math.nan if value is None else float(value),
            reward=reward,
            feasible=not violations,
            violations=tuple(violations),
            breakdown=breakdown,
            violation=violation,
        )
