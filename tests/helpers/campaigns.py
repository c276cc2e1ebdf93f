"""Real parts of one campaign for tests that drive the coordinator and the worker loop directly: a tiny generated
data set, a factory spec over it, a scripted proposer, and the campaign opened, budgeted and given an executor
the way ``Factory.run`` and ``Factory.work`` do it (:mod:`darkfab.runtime._factory`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from darkfab.execute import Executor
from darkfab.propose import Proposal, Proposer, TrialView
from darkfab.registry import Registry
from darkfab.results import Progress
from darkfab.runtime._budget import Budget
from darkfab.runtime._campaigns import Opened, budget_of, load_fitted, open_campaign
from darkfab.runtime._parts import reward_model, started_executor
from darkfab.runtime._trials import CampaignContext
from darkfab.spec import FactorySpec, spec_from_dict
from darkfab.store import Store

Config = tuple[str, dict[str, Any]]  # a trainer and its parameters, as a proposal names them

LOGISTIC: Config = ("logistic_regression", {"C": 1.0})
SOFT: Config = ("logistic_regression", {"C": 0.05})
FOREST: Config = ("random_forest", {"n_estimators": 20})
BROKEN: Config = ("logistic_regression", {"C": -1.0})  # scikit-learn refuses a negative C inside the trainer


def write_rows(folder: Path, rows: int = 240, seed: int = 9) -> Path:
    """A small two-class CSV whose label needs a line and a curve: a linear model and a forest differ on it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3))
    signal = x[:, 0] + 0.6 * (x[:, 1] ** 2 - 1.0) + 0.7 * rng.normal(size=rows)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "target": (signal > 0).astype(int)})
    path = folder / "rows.csv"
    frame.to_csv(path, index=False)
    return path


def spec_for(rows: Path, name: str, budget: dict[str, Any], *, workers: int = 1) -> FactorySpec:
    """Logistic regression and a small forest on ``rows``, scored by log loss, one validation split."""
    return spec_from_dict(
        {
            "name": name,
            "data": {"source": str(rows), "target": "target"},
            "objective": {"metric": "log_loss"},
            "trainers": [{"name": "logistic_regression"}, {"name": "random_forest"}],
            "search": {"cv": 0, "pruner": "none", "ensemble": False},
            "budget": budget,
            "execution": {"workers": workers, "trial_timeout": "60s", "latency_rows": 2},
            "gate": {"bootstrap": 100},
        },
        "test",
    )


class Scripted(Proposer):
    """Proposes ``configs`` (trainer, params) in order, then nothing; ``cycle`` proposes them round and round."""

    name = "scripted"

    def __init__(self, configs: Sequence[Config], *, cycle: bool = False) -> None:
        self.configs = list(configs)
        self.cycle = cycle
        self.proposed = 0
        self.observed: list[tuple[str, TrialView]] = []  # (proposal key, what the loop told us)
        self.replayed: list[TrialView] = []

    def replay(self, history: Sequence[TrialView]) -> None:
        self.replayed.extend(history)

    def propose(self, n: int) -> list[Proposal]:
        out: list[Proposal] = []
        while len(out) < n and (self.cycle or self.proposed < len(self.configs)):
            trainer, params = self.configs[self.proposed % len(self.configs)]
            out.append(Proposal(self.name, trainer, dict(params), "scripted", key=f"k{self.proposed}"))
            self.proposed += 1
        return out

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        self.observed.append((proposal.key, result))


@dataclass
class Parts:
    """An opened campaign and the executor started on its data (closed when the ``campaign`` block ends)."""

    store: Store
    opened: Opened
    executor: Executor

    @property
    def campaign_id(self) -> int:
        return self.opened.campaign.id

    def context(
        self,
        budget: Budget | None = None,
        *,
        owner: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> CampaignContext:
        """What ``Factory.run`` (the campaign's stored budget) or ``Factory.work`` (no budget, an owner) hands over."""
        spec, data = self.opened.spec, self.opened.data
        return CampaignContext(
            spec=spec,
            store=self.store,
            campaign=self.opened.campaign,
            dataset=data,
            executor=self.executor,
            reward=reward_model(spec, data, self.store),
            budget=budget if budget is not None else budget_of(self.store.get_campaign(self.campaign_id)),
            artifacts=Registry(self.store).artifacts,
            on_progress=on_progress,
            owner=owner,
        )


@contextlib.contextmanager
def campaign(store: Store, spec: FactorySpec) -> Iterator[Parts]:
    """Open (or resume) the factory's campaign in ``store`` and start the local executor on its data."""
    spec, data = load_fitted(spec)
    opened = open_campaign(store, spec, data, None)
    executor = started_executor(opened.spec, opened.data)
    try:
        yield Parts(store, opened, executor)
    finally:
        executor.close()
