"""Imported once by the fork server, so that every worker forked from it starts with the heavy modules loaded.

A library missing here is skipped: the worker imports it when a trial needs it.
"""

from __future__ import annotations

import importlib
import os

# Thread pools of the fork server itself stay small; each worker sets its own count from the payload.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

MODULES = (
    "numpy",
    "pandas",
    "sklearn",
    "sklearn.base",
    "sklearn.dummy",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "lightgbm",
    "xgboost",
    "darkfab.train",
    "darkfab.execute._worker",
)

for _name in MODULES:
    try:
        importlib.import_module(_name)
    except ImportError:
        pass
