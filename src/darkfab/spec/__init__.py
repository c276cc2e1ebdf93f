"""The factory file: pydantic models, defaults, JSON Schema and clear errors."""

from __future__ import annotations

from ._defaults import DEFAULT_FACTORY, STARTER, default_spec, default_trainers, fit_to_data
from ._load import format_validation_error, json_schema, load_spec, spec_from_dict, with_overrides
from ._metrics import DEFAULT_PRIMARY, METRICS, Direction, MetricInfo, TaskKind, metric_names
from ._models import (
    PORTFOLIO_MEMBERS,
    BudgetSpec,
    Constraint,
    CustomMetricSpec,
    DataSpec,
    DeploySpec,
    ExecutionSpec,
    FactorySpec,
    GateSpec,
    LLMPrices,
    LLMSpec,
    MonitorSpec,
    ObjectiveSpec,
    ParamSpec,
    SearchSpec,
    SplitSpec,
    TrainerSpec,
    parse_duration,
)

__all__ = [
    "DEFAULT_FACTORY",
    "DEFAULT_PRIMARY",
    "METRICS",
    "PORTFOLIO_MEMBERS",
    "STARTER",
    "BudgetSpec",
    "Constraint",
    "CustomMetricSpec",
    "DataSpec",
    "DeploySpec",
    "Direction",
    "ExecutionSpec",
    "FactorySpec",
    "GateSpec",
    "LLMPrices",
    "LLMSpec",
    "MetricInfo",
    "MonitorSpec",
    "ObjectiveSpec",
    "ParamSpec",
    "SearchSpec",
    "SplitSpec",
    "TaskKind",
    "TrainerSpec",
    "default_spec",
    "default_trainers",
    "fit_to_data",
    "format_validation_error",
    "json_schema",
    "load_spec",
    "metric_names",
    "parse_duration",
    "spec_from_dict",
    "with_overrides",
]
