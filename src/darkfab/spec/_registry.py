"""The ``registry:`` section: where else every registration goes (an MLflow model registry)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_URI = re.compile(r"^(https?|file|sqlite|postgresql|mysql|databricks)(\+\w+)?:\S*$|^databricks$")
_EXAMPLE = "registry:\n  mlflow:\n    tracking_uri: http://127.0.0.1:5000"


class MlflowRegistrySpec(BaseModel):
    """An MLflow tracking server that mirrors every version the gate registers, with the same alias."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tracking_uri: str = Field(
        description="the MLflow tracking server, e.g. http://127.0.0.1:5000 (what `mlflow server` prints)"
    )
    registered_name: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="the registered model's name in MLflow; the factory's name when absent",
    )
    experiment: str | None = Field(
        None, min_length=1, description="the MLflow experiment the runs go to; the factory's name when absent"
    )
    on_error: Literal["warn", "fail"] = Field(
        "warn",
        description="when MLflow refuses or cannot be reached (the darkfab registration is kept either way): "
        "warn records the event mlflow_export_failed and the run goes on; fail records it too and the run ends "
        "with an error (exit status 1) after the campaign is finished",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError(f"registry.mlflow.tracking_uri is empty; write the server's URL, for example:\n{_EXAMPLE}")
        if not _URI.match(value):
            raise ValueError(
                "registry.mlflow.tracking_uri must be an MLflow tracking URI (http://host:port, https://..., "
                f"file:..., sqlite:///..., databricks), got {value!r}; fix: write e.g. http://127.0.0.1:5000"
            )
        return value.rstrip("/")


class RegistrySpec(BaseModel):
    """Registries every gate winner is mirrored to, besides darkfab's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mlflow: MlflowRegistrySpec | None = Field(
        None,
        description="mirror each registered version to MLflow (`darkfab export mlflow`) and set the same alias",
    )
