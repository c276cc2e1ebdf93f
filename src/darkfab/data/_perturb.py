"""Lightly perturbed copies of rows, for the gate's memorization probe.

Numeric columns get Gaussian jitter of ``scale`` times the column's standard deviation (measured on the
reference rows, e.g. training); categorical, boolean and date columns are kept. An honest model barely moves
on such copies; a model that looks rows up by their exact values answers them as if it had never seen them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

JITTER = 0.05


def jittered(frame: pd.DataFrame, reference: pd.DataFrame, *, scale: float = JITTER, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with each numeric column moved by N(0, (scale * std of ``reference``'s column)^2)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
            continue
        std = float(pd.to_numeric(reference[name], errors="coerce").std())
        if not np.isfinite(std) or std == 0:
            continue
        out[name] = col.astype(float) + rng.normal(0.0, scale * std, len(col))
    return out
