"""A loaded model version (:class:`Deployment`) and one answered request (:class:`Answer`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..registry import Registry
from ..store import ModelVersionRecord
from ..train import DarkfabModel, load_model
from ._inputs import FeatureSchema

CHAMPION = "champion"
CHALLENGER = "challenger"
OUTPUTS = ("predictions", "probabilities")


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    return item() if callable(item) else value


def _class_datatype(classes: tuple[Any, ...]) -> str:
    if all(type(c) is bool for c in classes):
        return "BOOL"
    if all(type(c) is int for c in classes):
        return "INT64"
    return "BYTES"


@dataclass(frozen=True)
class Deployment:
    """A loaded model version and everything a request needs from it. Never changed once made."""

    factory: str
    factory_id: int
    record: ModelVersionRecord
    model: DarkfabModel
    schema: FeatureSchema
    classes: tuple[Any, ...]  # JSON-ready (plain Python) class labels; () for regression

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def task(self) -> str:
        return str(self.model.task)

    def metadata(self) -> dict[str, Any]:
        outputs: list[dict[str, Any]] = []
        if self.task == "regression":
            outputs.append({"name": "predictions", "datatype": "FP64", "shape": [-1]})
        else:
            outputs.append({"name": "predictions", "datatype": _class_datatype(self.classes), "shape": [-1]})
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(self.classes)]})
        return {
            "name": self.factory,
            "versions": [str(self.version)],
            "platform": "darkfab",
            "inputs": self.schema.metadata(),
            "outputs": outputs,
            "parameters": {
                "task": self.task,
                "trainer": self.record.trainer,
                "classes": list(self.classes),
                "artifact_hash": self.record.artifact_hash,
                "aliases": list(self.record.aliases),
            },
        }

    def predict(self, frame: pd.DataFrame) -> tuple[list[Any], list[list[float]] | None]:
        """Predictions as plain Python values, and class probabilities (rows in class order) or None."""
        raw = self.model.predict_raw(frame)
        if self.task == "regression":
            return np.asarray(raw, dtype=float).tolist(), None
        proba = np.asarray(raw, dtype=float)
        return [self.classes[i] for i in proba.argmax(axis=1).tolist()], proba.tolist()


def load_deployment(registry: Registry, factory: str, ref: int | str) -> Deployment:
    """Load a version: its artifact's hash is verified (Registry.load_bytes) before it is unpickled."""
    record, blob = registry.load_bytes(factory, ref)
    model = load_model(blob)
    classes = tuple(_plain(c) for c in model.classes) if model.task != "regression" else ()
    return Deployment(
        factory=factory,
        factory_id=record.factory_id,
        record=record,
        model=model,
        schema=FeatureSchema.of(
            tuple(model.features),
            dict(model.feature_types),
            getattr(getattr(model, "prep", None), "ranges", None),  # absent from models saved before it was kept
        ),
        classes=classes,
    )


@dataclass(frozen=True)
class Answer:
    """One answered prediction request."""

    deployment: Deployment
    request_id: str
    predictions: list[Any]
    probabilities: list[list[float]] | None
    role: str = CHAMPION  # champion | challenger: which one answered
