"""Data: sources, checks, splits including the sealed test, fingerprints."""

from __future__ import annotations

from ._dataset import Dataset, check_features, feature_type, fingerprint, infer_task, load_dataset
from ._rows import check_rows, duplicate_columns
from ._sources import SKLEARN_SETS, read_source, read_table

__all__ = [
    "SKLEARN_SETS",
    "Dataset",
    "check_features",
    "check_rows",
    "duplicate_columns",
    "feature_type",
    "fingerprint",
    "infer_task",
    "load_dataset",
    "read_source",
    "read_table",
]
