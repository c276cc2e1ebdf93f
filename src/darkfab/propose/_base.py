"""The Proposer contract: turn the objective and a read-only history into proposals."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..events import StopReason
from ..patch import CodePatch
from ..spec import LLMSpec, ParamSpec, TrainerSpec

TrialState = Literal["queued", "running", "completed", "failed", "pruned", "cancelled"]


@dataclass(frozen=True)
class Proposal:
    """One experiment: a trainer, its parameters (hyperparameters only), its code change if any, and why."""

    proposer: str
    trainer: str
    params: dict[str, Any]
    reason: str
    key: str = ""  # the proposer's own handle (e.g. an Optuna trial number), opaque to the factory
    parents: tuple[int, ...] = ()
    patch: CodePatch | None = None  # the script trainer's code edit (llm_code); None: the trainer's code as written


@dataclass(frozen=True)
class TrialView:
    """A read-only snapshot of one past trial, as proposers see it. Never holds sealed-test figures."""

    trial_id: int
    proposer: str
    trainer: str
    params: dict[str, Any]
    state: TrialState
    value: float | None  # the primary metric on validation, None unless completed
    values: tuple[float, ...] | None = None  # multi-objective values
    intermediate: dict[int, float] = field(default_factory=dict)
    reward: float | None = None
    feasible: bool | None = None
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics of a completed trial
    seconds: float | None = None  # wall seconds the trial ran, when known
    patch: CodePatch | None = None  # the code edit the trial ran (part of its identity, as its params are)


@dataclass(frozen=True)
class SearchContext:
    """What a proposer is told about the search when it is made."""

    trainers: Sequence[TrainerSpec]
    spaces: dict[str, dict[str, ParamSpec | Any]]  # trainer name -> resolved space (ParamSpec or fixed value)
    directions: tuple[Literal["maximize", "minimize"], ...]  # one per objective; the primary metric first
    objective_names: tuple[str, ...]
    seed: int = 0
    startup_trials: int = 10
    pruner: str = "none"
    description: str = ""  # objective.description, free text for LLM proposers
    constraints: tuple[str, ...] = ()  # objective.constraints as text, e.g. "latency_p95_ms <= 20"
    llm: LLMSpec | None = None  # search.llm: the endpoint of LLM proposers
    portfolio: tuple[str, ...] = ()  # search.portfolio: members of the portfolio proposer
    warm_configs: tuple[tuple[str, dict[str, Any]], ...] = ()  # (trainer, params) tried first on a cold start
    # (trainer, params, why) that did well on similar factories of the same store: tried before warm_configs
    borrowed_configs: tuple[tuple[str, dict[str, Any], str], ...] = ()


class Proposer(abc.ABC):
    """Proposes experiments. The history it gets is read-only; it learns through :meth:`observe`."""

    name: str = "proposer"

    @abc.abstractmethod
    def replay(self, history: Sequence[TrialView]) -> None:
        """Learn from trials of earlier runs (a resumed or warm-started campaign)."""

    @abc.abstractmethod
    def propose(self, n: int) -> list[Proposal]:
        """Return up to ``n`` new proposals."""

    @abc.abstractmethod
    def observe(self, proposal: Proposal, result: TrialView) -> None:
        """Learn the outcome of a proposal this proposer made (or one replayed from a resumed run)."""

    @property
    def exhausted(self) -> str:
        """Why this proposer stopped for good (its LLM's token or money budget is spent); empty while it may
        propose. A campaign that stops because nothing more is proposed gives this as its reason."""
        return ""

    @property
    def stop_reason(self) -> StopReason | None:
        """``StopReason.LLM_BUDGET`` once :attr:`exhausted` says this proposer stopped for good; else None."""
        return StopReason.LLM_BUDGET if self.exhausted else None

    def should_prune(self, proposal: Proposal, step: int, value: float) -> bool:
        """Called with each intermediate validation score; True stops the trial. Default: never."""
        return False
