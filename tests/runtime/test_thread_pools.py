"""A run in the caller's own process leaves the caller's thread pools (BLAS, OpenMP) as they were.

The refit after the gate trains in the factory's process; it limited the process-wide pools to the trials'
thread count (``execution.threads``, 1 by default) and never put them back, so a notebook's numpy ran on one core
after ``Factory.run()``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sklearn.ensemble  # noqa: F401 - loads the OpenMP pool the forests use, so its setting is seen
from threadpoolctl import threadpool_info, threadpool_limits

from darkfab.runtime import Factory
from darkfab.spec import spec_from_dict
from darkfab.store import Store


def _pools() -> dict[str, int]:
    return {p["filepath"]: p["num_threads"] for p in threadpool_info()}


def test_a_run_with_a_refit_leaves_the_callers_thread_pools_as_they_were(tmp_path: Path) -> None:
    np.ones((8, 8)) @ np.ones((8, 8))  # the BLAS pool is loaded
    spec = spec_from_dict(
        {
            "name": "pools",
            "data": {"source": "sklearn:breast_cancer"},
            "trainers": [{"name": "random_forest"}],
            "search": {"cv": 0},
            "budget": {"trials": 2},
            "execution": {"workers": 1, "threads": 1},
            "gate": {"bootstrap": 200, "refit": "train+valid"},
        }
    )
    with threadpool_limits(3):  # what the caller chose, other than the trials' 1
        before = _pools()
        assert before and set(before.values()) == {3}
        with Store(f"sqlite:///{tmp_path / 's.db'}") as store:
            result = Factory(spec, store=store).run()
        after = _pools()
    refit = result.gate.refit if result.gate else None
    assert refit is not None and refit.refit and refit.trained_on == "train+valid", result.gate
    assert {k: after.get(k) for k in before} == before
