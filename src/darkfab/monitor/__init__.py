"""Monitoring: drift tests of live windows against the training reference, live quality, triggers, alerts.

:class:`Monitor` reads the prediction log in windows, tests each against a :class:`Reference` with
:func:`detect_drift`, scores the labelled rows (:func:`assess_quality`), stores the window and says
whether a new campaign should start; :class:`Alerter` sends alerts to the log and a webhook.
"""

from __future__ import annotations

from ._alerts import ALERT_KINDS, Alerter
from ._drift import (
    DEFAULT_THRESHOLDS,
    METHODS,
    ColumnDrift,
    DriftReport,
    Reference,
    detect_drift,
    select_method,
)
from ._quality import LIVE_METRICS, LiveQuality, assess_quality, live_score
from ._windows import Monitor, WindowResult

__all__ = [
    "ALERT_KINDS",
    "DEFAULT_THRESHOLDS",
    "LIVE_METRICS",
    "METHODS",
    "Alerter",
    "ColumnDrift",
    "DriftReport",
    "LiveQuality",
    "Monitor",
    "Reference",
    "WindowResult",
    "assess_quality",
    "detect_drift",
    "live_score",
    "select_method",
]
