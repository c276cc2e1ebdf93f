"""Data: sources, checks, splits including the sealed test, fingerprints, leak detection."""

from __future__ import annotations

from ._dataset import Dataset, check_features, feature_type, fingerprint, infer_task, infer_task_reason, load_dataset
from ._leaks import Leak, find_leaks
from ._perturb import JITTER, jittered
from ._profile import DataProfile
from ._rows import check_rows, duplicate_columns
from ._sources import SKLEARN_SETS, read_source, read_table, write_snapshot

__all__ = [
    "JITTER",
    "SKLEARN_SETS",
    "DataProfile",
    "Dataset",
    "Leak",
    "check_features",
    "check_rows",
    "duplicate_columns",
    "feature_type",
    "find_leaks",
    "fingerprint",
    "infer_task",
    "infer_task_reason",
    "jittered",
    "load_dataset",
    "read_source",
    "read_table",
    "write_snapshot",
]
