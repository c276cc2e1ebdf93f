"""Meta-features of a data set, so a new factory can start from what did well on similar data in the same store."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ._dataset import Dataset


@dataclass(frozen=True)
class DataProfile:
    """What a data set looks like, without its values: the task, the labelled rows, the feature columns and
    their kinds, the classes and the share of missing cells (training and validation rows; never the sealed ones).
    """

    task: str
    rows: int
    columns: int
    numeric_share: float
    missing_share: float
    classes: int  # 0 for regression

    @classmethod
    def of(cls, data: Dataset) -> DataProfile:
        frames = (data.X_train, data.X_valid)
        cells = sum(X.shape[0] * X.shape[1] for X in frames)
        missing = sum(int(X.isna().to_numpy().sum()) for X in frames)
        numeric = sum(1 for kind in data.feature_types.values() if kind == "numeric")
        return cls(
            task=data.task,
            rows=len(data.y_train) + len(data.y_valid),
            columns=len(data.features),
            numeric_share=round(numeric / max(1, len(data.features)), 4),
            missing_share=round(missing / cells, 4) if cells else 0.0,
            classes=data.n_classes,
        )

    @classmethod
    def from_dict(cls, raw: Any) -> DataProfile | None:
        """The profile a campaign's summary holds; None when it holds none or one this version cannot read."""
        if not isinstance(raw, dict):
            return None
        try:
            return cls(
                task=str(raw["task"]),
                rows=int(raw["rows"]),
                columns=int(raw["columns"]),
                numeric_share=float(raw["numeric_share"]),
                missing_share=float(raw["missing_share"]),
                classes=int(raw["classes"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def vector(self) -> np.ndarray:
        """Rows and columns on a log scale (ten times as many is 1 apart), shares as they are, classes as log2."""
        return np.array(
            [
                math.log10(max(1, self.rows)),
                math.log10(max(1, self.columns)),
                self.numeric_share,
                self.missing_share,
                math.log2(max(1, self.classes)) / 2,
            ]
        )

    def distance(self, other: DataProfile) -> float:
        """Euclidean distance of the two :meth:`vector` s; infinite across tasks."""
        if self.task != other.task:
            return math.inf
        return float(np.linalg.norm(self.vector() - other.vector()))

    def describe(self) -> str:
        classes = f", {self.classes} classes" if self.classes else ""
        return (
            f"{self.task}, {self.rows:,} rows, {self.columns} columns ({self.numeric_share:.0%} numeric){classes}, "
            f"{self.missing_share:.0%} missing"
        )
