"""The ensemble's pool keeps the best candidate of every trainer, so the selection has different models to blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from darkfab import Factory

FACTORY = """\
name: blend
data: {source: rows.csv, target: y}
trainers:
  - name: linear_regression
    space: {alpha: {low: 0.0001, high: 0.01, log: true}}
  - name: extra_trees
    params: {n_estimators: 20}
search: {proposer: random, seed: 0, ensemble: true}
budget: {trials: 24}
execution: {workers: 1, latency_rows: 1}
gate: {bootstrap: 100}
"""


def _near_linear_rows(path: Path, n: int = 240) -> None:
    """A line plus a bowl: ridge gets the line and cannot see the bowl, the trees the other way round."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = 3.0 * x[:, 0] + 2.0 * x[:, 1] + 0.8 * x[:, 2] ** 2 + rng.normal(scale=0.5, size=n)
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_csv(path, index=False)


def test_the_ensemble_blends_the_linear_model_with_the_trees_it_outranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the search spends most trials on near-identical ridge penalties, which outrank every tree: a pool of the
    # best eight alone held only ridge copies, and the "ensemble" was one linear model
    monkeypatch.setenv("DARKFAB_ARTIFACTS", str(tmp_path / "artifacts"))
    _near_linear_rows(tmp_path / "rows.csv")
    (tmp_path / "factory.yaml").write_text(FACTORY)
    with Factory.from_file(tmp_path / "factory.yaml", store=str(tmp_path / "db.sqlite")) as factory:
        factory.run()
        trials = {t.id: t for t in factory.trials() if t.state == "completed"}

    singles = [t for t in trials.values() if t.trainer != "ensemble"]
    assert sum(t.value < min(t.value for t in singles if t.trainer == "extra_trees") for t in singles) > 8
    (ensemble,) = [t for t in trials.values() if t.trainer == "ensemble"]
    members = {trials[i].trainer for i in ensemble.params["members"]}
    assert members == {"linear_regression", "extra_trees"}
    assert ensemble.value < 0.98 * min(t.value for t in singles)  # the blend beats every single candidate
