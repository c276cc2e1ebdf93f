"""The promotion rule: is the challenger no worse than the champion on the live figures?

Promote when every check holds, roll back when one fails::

    error rate   challenger <= champion + max_error_rate_increase
    latency      p95 challenger <= max_latency_ratio * p95 champion, each p95 taken as at least
                 ``latency_floor_ms`` (below a millisecond the timer and the GIL decide, not the model)
    quality      only when both versions have >= MIN_LABELLED labelled rows:
                 accuracy challenger >= champion - max_quality_drop (RMSE: <= champion + max_quality_drop)

The reason states the figures, so the event log alone explains the decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..spec import DeploySpec

MIN_LABELLED = 30
DEFAULT_LATENCY_FLOOR_MS = 1.0


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str
    checks: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Figures:
    """What the rule reads of one version's live figures (a :meth:`LiveFigures.snapshot`)."""

    version: int
    requests: int
    error_rate: float
    latency_p95_ms: float | None
    quality_metric: str
    quality: float | None
    labelled_rows: int

    @classmethod
    def of(cls, snapshot: Mapping[str, Any]) -> Figures:
        """The figures the rule reads, out of a :meth:`LiveFigures.snapshot` result."""
        q = snapshot["quality"]
        return cls(
            version=snapshot["version"],
            requests=snapshot["requests"],
            error_rate=snapshot["error_rate"],
            latency_p95_ms=snapshot["latency_p95_ms"],
            quality_metric=q["metric"],
            quality=q["value"],
            labelled_rows=q["labelled_rows"],
        )


@dataclass(frozen=True)
class ContestFigures:
    """Everything :func:`judge` decides on: the deploy limits and both versions' figures, frozen."""

    limits: DeploySpec
    champion: Figures
    challenger: Figures
    latency_floor_ms: float = DEFAULT_LATENCY_FLOOR_MS


def _rate(x: float) -> str:
    return f"{x:.3f}"


def judge(contest: ContestFigures) -> Verdict:
    """Promote or roll back the challenger of ``contest`` under its limits."""
    deploy, champion, challenger = contest.limits, contest.champion, contest.challenger
    checks: dict[str, bool] = {}
    parts: list[str] = []
    failed: list[str] = []

    e_ch, e_cp = challenger.error_rate, champion.error_rate
    allowed = e_cp + deploy.max_error_rate_increase
    checks["error_rate"] = e_ch <= allowed + 1e-12
    parts.append(f"error rate {_rate(e_ch)} vs {_rate(e_cp)}")
    if not checks["error_rate"]:
        failed.append(f"error rate {_rate(e_ch)} > {_rate(e_cp)} + {deploy.max_error_rate_increase:g} allowed")

    p_ch, p_cp = challenger.latency_p95_ms, champion.latency_p95_ms
    if p_ch is None or p_cp is None:
        checks["latency"] = True
        parts.append("p95 latency not compared (a version answered no request without error)")
    else:
        floor = contest.latency_floor_ms
        ratio = max(p_ch, floor) / max(p_cp, floor)
        checks["latency"] = ratio <= deploy.max_latency_ratio
        sign = "<=" if checks["latency"] else ">"
        parts.append(f"p95 {p_ch:.2f} ms vs {p_cp:.2f} ms (ratio {ratio:.2f} {sign} {deploy.max_latency_ratio:g})")
        if not checks["latency"]:
            failed.append(f"p95 latency ratio {ratio:.2f} > {deploy.max_latency_ratio:g}")

    q_ch, q_cp = challenger.quality, champion.quality
    n_ch, n_cp = challenger.labelled_rows, champion.labelled_rows
    metric = challenger.quality_metric
    if min(n_ch, n_cp) >= MIN_LABELLED and q_ch is not None and q_cp is not None:
        if metric == "rmse":
            checks["quality"] = q_ch <= q_cp + deploy.max_quality_drop + 1e-12
        else:
            checks["quality"] = q_ch >= q_cp - deploy.max_quality_drop - 1e-12
        parts.append(f"{metric} {q_ch:.3f} vs {q_cp:.3f} on {n_ch} and {n_cp} labelled rows")
        if not checks["quality"]:
            worse = ">" if metric == "rmse" else "<"
            sign = "+" if metric == "rmse" else "-"
            failed.append(f"{metric} {q_ch:.3f} {worse} {q_cp:.3f} {sign} {deploy.max_quality_drop:g} allowed")
    else:
        parts.append(f"{metric} not compared ({n_ch} and {n_cp} labelled rows; {MIN_LABELLED} each are needed)")

    figures = (
        f"challenger v{challenger.version} vs champion v{champion.version} after {challenger.requests} requests: "
        + ", ".join(parts)
    )
    promote = all(checks.values())
    if promote:
        return Verdict(True, f"promoted: no worse than the champion; {figures}", checks)
    return Verdict(False, f"rolled back: {'; '.join(failed)}; {figures}", checks)
