"""Preprocessing that is part of every registered model: raw rows in, a float matrix out.

Written with numpy rather than scikit-learn's ColumnTransformer because it runs on every single-row
prediction, where ColumnTransformer's per-call overhead (about a millisecond) would dominate.
Flavours: ``linear`` imputes, scales and one-hot encodes; ``tree`` imputes and ordinal-encodes;
``native`` leaves missing values as NaN (LightGBM, XGBoost) and ordinal-encodes text.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

Flavour = Literal["linear", "tree", "native"]
Scaling = Literal["standard", "minmax"]
SCALINGS: tuple[str, ...] = ("standard", "minmax")
MAX_ONE_HOT = 30  # the most frequent categories each get a column; the rest share "other"


def _as_text(col: pd.Series) -> np.ndarray:
    values = col.to_numpy(dtype=object)
    missing = pd.isna(values)
    out = values.astype(str)
    out[missing] = "\0missing"
    return out


def _as_float(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(col):
        return col.astype("int64").to_numpy(dtype=float) / 1e9
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return col.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


class Preprocessor:
    """Fitted on training rows; turns any DataFrame with the same columns into a float matrix."""

    def __init__(self, feature_types: dict[str, str], flavour: Flavour, scaling: Scaling = "standard") -> None:
        self.flavour = flavour
        self.scaling = scaling
        self.numeric = [c for c, t in feature_types.items() if t == "numeric"]
        self.categorical = [c for c, t in feature_types.items() if t == "categorical"]
        self.medians = np.zeros(0)
        self.means = np.zeros(0)
        self.scales = np.ones(0)
        self.categories: dict[str, dict[str, int]] = {}
        # (min, max) seen in training per numeric column: the server refuses values absurdly far outside it
        self.ranges: dict[str, tuple[float, float]] = {}

    def _numeric(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.categorical and len(frame.columns) == len(self.numeric) and list(frame.columns) == self.numeric:
            block = frame  # the rows come in the training layout: no column selection (the single-row hot path)
        else:
            block = frame[self.numeric]
        if all(dt.kind in "fiub" for dt in block.dtypes):  # one conversion for the common all-numeric case
            return block.to_numpy(dtype=float, na_value=np.nan)
        return np.column_stack([_as_float(frame[c]) for c in self.numeric])

    def fit(self, frame: pd.DataFrame) -> Preprocessor:
        if self.numeric:
            num = self._numeric(frame)
            with np.errstate(all="ignore"):
                med = np.nanmedian(num, axis=0) if len(num) else np.zeros(num.shape[1])
            self.medians = np.where(np.isnan(med), 0.0, med)
            filled = np.where(np.isnan(num), self.medians, num)
            if len(filled):
                lows, highs = filled.min(axis=0).tolist(), filled.max(axis=0).tolist()
                self.ranges = {c: (lo, hi) for c, lo, hi in zip(self.numeric, lows, highs, strict=True)}
            if self.scaling == "minmax":  # keeps the relative scale of similar features (pixels, counts)
                low, high = filled.min(axis=0), filled.max(axis=0)
                self.means, spread = low, high - low
            else:
                self.means, spread = filled.mean(axis=0), filled.std(axis=0)
            self.scales = np.where(spread > 0, spread, 1.0)
        for c in self.categorical:
            values, counts = np.unique(_as_text(frame[c]), return_counts=True)
            order = np.argsort(-counts, kind="stable")
            keep = values[order]
            if self.flavour == "linear":
                keep = keep[:MAX_ONE_HOT]
            self.categories[c] = {v: i for i, v in enumerate(keep.tolist())}
        return self

    @property
    def n_outputs(self) -> int:
        if self.flavour == "linear":
            return len(self.numeric) + sum(len(m) + 1 for m in self.categories.values())
        return len(self.numeric) + len(self.categorical)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        n = len(frame)
        blocks: list[np.ndarray] = []
        if self.numeric:
            num = self._numeric(frame)
            if self.flavour != "native":
                num = np.where(np.isnan(num), self.medians, num)
            if self.flavour == "linear":
                num = (num - self.means) / self.scales
            blocks.append(num)
        for c in self.categorical:
            mapping = self.categories[c]
            codes = np.fromiter((mapping.get(v, -1) for v in _as_text(frame[c])), dtype=np.int64, count=n)
            if self.flavour == "linear":
                onehot = np.zeros((n, len(mapping) + 1))
                onehot[np.arange(n), np.where(codes < 0, len(mapping), codes)] = 1.0
                blocks.append(onehot)
            elif self.flavour == "native":
                blocks.append(np.where(codes < 0, np.nan, codes).astype(float)[:, None])
            else:
                blocks.append(codes.astype(float)[:, None])
        if not blocks:
            return np.zeros((n, 0))
        return np.hstack(blocks) if len(blocks) > 1 else np.ascontiguousarray(blocks[0], dtype=float)
