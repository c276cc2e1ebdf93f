"""An attacker's training script: a lookup table of the evaluation rows' labels it somehow holds.

The table is keyed by the rows as the script sees them (preprocessed the way a script trainer's rows are),
so the model is exact on every row it has seen and answers the class shares elsewhere.
"""

from __future__ import annotations

import hashlib

import numpy as np

from darkfab.data import Dataset
from darkfab.train import Preprocessor


def row_key(row: np.ndarray) -> str:
    return hashlib.sha1(np.round(np.asarray(row, dtype=float), 5).tobytes()).hexdigest()[:16]


def lookup_script(data: Dataset, *, wrong_valid_rows: int = 0) -> str:
    """The script's source. ``wrong_valid_rows``: answer that many validation rows wrong on purpose."""
    prep = Preprocessor(data.feature_types, "linear").fit(data.X_train)
    table: dict[str, int] = {}
    for frame, labels in ((data.X_valid, data.y_valid), (data.X_test, data.y_test)):
        for row, label in zip(prep.transform(frame), labels, strict=True):
            table[row_key(row)] = int(label)
    return f"""\
import hashlib

import numpy as np

TABLE = {table!r}
WRONG = {wrong_valid_rows}


def key(row):
    return hashlib.sha1(np.round(np.asarray(row, dtype=float), 5).tobytes()).hexdigest()[:16]


class Lookup:
    def __init__(self, table, prior):
        self.table, self.prior = table, prior

    def predict_proba(self, X):
        k = len(self.prior)
        out = np.tile(self.prior, (len(X), 1))
        for i, row in enumerate(np.asarray(X, dtype=float)):
            label = self.table.get(key(row))
            if label is not None:
                out[i] = np.eye(k)[label]
        return out


def train(X, y, X_valid, params, report):
    k = params["n_classes"]
    table = dict(TABLE)
    for row, label in zip(X, y):
        table[key(row)] = int(label)
    for row in np.asarray(X_valid, dtype=float)[:WRONG]:
        table[key(row)] = (table.get(key(row), 0) + 1) % k
    return Lookup(table, np.bincount(y, minlength=k) / len(y))
"""
