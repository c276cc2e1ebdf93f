"""Classic search through Optuna's samplers and pruners, by ask-and-tell on an in-memory study.

darkfab's store is the record of truth; the study here is a scratch copy the sampler learns from. It is
rebuilt from the store's history by :meth:`OptunaProposer.replay` when a campaign resumes or warm-starts.

Samplers (``sampler=``):

- ``tpe``: ``TPESampler(multivariate=True, group=True, constant_liar=True)``. The space is conditional
  (each trainer has its own parameters); ``group=True`` splits it into the subspaces that occur together
  and models each jointly, where plain multivariate TPE would see only the ``trainer`` choice in the
  intersection of all trials' spaces and fall back to independent sampling for every trainer parameter.
  ``constant_liar`` keeps parallel workers from being handed the same region while trials are running.
- ``random``: ``RandomSampler``.
- ``cmaes``: ``CmaEsSampler`` over the numeric parameters shared by all trials (all of them when there is
  one trainer); the trainer choice, categorical and conditional parameters go to an independent TPE.
  Single-objective only; needs the ``cmaes`` package.
- ``qmc``: ``QMCSampler`` (scrambled Sobol, seeded). Optuna's QMC assumes one fixed space: with several
  trainers, the dimensions of the first trial's trainer follow the sequence and the others are random.
- ``nsga2``: ``NSGAIISampler`` with a population of ``max(4, startup_trials)``; one objective per direction.

Pruners (``context.pruner``; steps are boosting rounds): ``none``; ``median``:
``MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_steps)``; ``successive_halving``:
``SuccessiveHalvingPruner()``; ``hyperband``: ``HyperbandPruner()``. Multi-objective studies never prune
(Optuna cannot report intermediate values there).

A trial's feasibility (``TrialView.feasible``) is passed to TPE and NSGA-II as an Optuna constraint, so
they rank an infeasible trial below every feasible one, as darkfab's reward model does.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import Trial
from optuna.trial import TrialState as OptunaState

from ..errors import SpecError
from ..patch import CodePatch
from ._base import Proposal, Proposer, SearchContext, TrialView
from ._space import ConditionalSpace, Signature

SAMPLERS: tuple[str, ...] = ("tpe", "random", "cmaes", "qmc", "nsga2")
PRUNERS: tuple[str, ...] = ("none", "median", "successive_halving", "hyperband")
CONSTRAINED_SAMPLERS: tuple[str, ...] = ("tpe", "nsga2")
"""The samplers that use Optuna constraints (the others warn when given them)."""
FEASIBLE_CONSTRAINT = "darkfab_feasible"
"""Name of the Optuna constraint that carries ``TrialView.feasible`` (0 feasible, 1 infeasible)."""


def _make_sampler(name: str, context: SearchContext) -> optuna.samplers.BaseSampler:
    # TPE's `group` option and QMCSampler are marked experimental; darkfab pins their behaviour in tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _sampler(name, context)


def _sampler(name: str, context: SearchContext) -> optuna.samplers.BaseSampler:
    seed = context.seed
    startup = context.startup_trials
    if name == "tpe":
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=startup, multivariate=True, group=True, constant_liar=True
        )
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise SpecError(
                "search.proposer 'cmaes' needs the `cmaes` package, which is not installed; "
                "run `pip install cmaes` or choose another proposer (tpe, random, qmc, nsga2)"
            ) from None
        independent = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=False)
        return optuna.samplers.CmaEsSampler(
            seed=seed,
            n_startup_trials=max(1, startup),
            independent_sampler=independent,
            warn_independent_sampling=False,
        )
    if name == "qmc":
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            scramble=True,
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    assert name == "nsga2"
    return optuna.samplers.NSGAIISampler(population_size=max(4, startup), seed=seed)


def _make_pruner(name: str, warmup_steps: int) -> optuna.pruners.BasePruner:
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup_steps)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    assert name == "hyperband"
    return optuna.pruners.HyperbandPruner()


@dataclass
class _Live:
    """A trial asked of the study and not yet told."""

    trial: Trial
    trainer: str
    params: dict[str, Any]
    signature: Signature
    reported: set[int] = field(default_factory=set)


class OptunaProposer(Proposer):
    """Proposes by asking an Optuna sampler; learns by telling it the outcome."""

    def __init__(
        self,
        context: SearchContext,
        sampler: str = "tpe",
        *,
        warmup_steps: int = 10,
        duplicate_retries: int = 8,
    ) -> None:
        """
        Args:
            context: the trainers, their spaces, the objectives, seed, startup trials and pruner.
            sampler: one of :data:`SAMPLERS`.
            warmup_steps: boosting rounds before the median pruner may stop a trial.
            duplicate_retries: extra asks when the sampler repeats a parameter set already proposed.
        """
        if sampler not in SAMPLERS:
            raise SpecError(f"sampler must be one of {list(SAMPLERS)}, got {sampler!r}")
        if context.pruner not in PRUNERS:
            raise SpecError(f"search.pruner must be one of {list(PRUNERS)}, got {context.pruner!r}")
        directions = tuple(context.directions)
        if not directions or any(d not in ("maximize", "minimize") for d in directions):
            raise SpecError(f"directions must list 'maximize' or 'minimize' once per objective, got {list(directions)}")
        if sampler == "cmaes" and len(directions) > 1:
            raise SpecError(
                f"search.proposer 'cmaes' optimises one objective, but {len(directions)} are declared "
                f"({', '.join(context.objective_names)}); use nsga2 or tpe for several objectives"
            )
        if context.startup_trials < 0:
            raise SpecError(f"search.startup_trials must be >= 0, got {context.startup_trials}")
        self.name = sampler
        self.context = context
        self.space = ConditionalSpace(context)
        # per-trial INFO lines from Optuna would flood the factory's log; darkfab records trials itself
        optuna.logging.set_verbosity(logging.WARNING)
        self._study = optuna.create_study(
            directions=list(directions),
            sampler=_make_sampler(sampler, context),
            pruner=_make_pruner(context.pruner, warmup_steps),
            study_name=f"darkfab-{sampler}",  # fixed: HyperbandPruner derives brackets from the name
        )
        self._multi = len(directions) > 1
        self._constrained = sampler in CONSTRAINED_SAMPLERS
        self._maximize = directions[0] == "maximize"
        self._retries = max(0, duplicate_retries)
        self._live: dict[str, _Live] = {}
        self._seen: set[Signature] = set()
        self._told: set[tuple[str, Signature]] = set()
        self._finished = 0  # completed + pruned: what the model-based samplers count
        self._completed = 0
        self._best: float | None = None
        self._startup_proposed = 0
        self.replayed = 0
        """Trials of earlier runs added to the study by :meth:`replay`."""
        self.skipped = 0
        """Trials of earlier runs that no longer fit the space, left out of the study."""
        self.pending = 0
        """Queued or running trials of earlier runs (their parameters count as proposed)."""
        self._warm_done = False
        self._warm_keys: dict[Signature, str] = {}  # a warm-start configuration -> why it is tried

    @property
    def study(self) -> optuna.Study:
        """The in-memory Optuna study, for inspection. Tell it nothing: go through :meth:`observe`."""
        return self._study

    # ------------------------------------------------------------------------------------------------
    # Proposer

    def propose(self, n: int) -> list[Proposal]:
        if not self._warm_done:
            self._enqueue_portfolio()
        return [self._propose_one() for _ in range(max(0, n))]

    def _enqueue_portfolio(self) -> None:
        """On a cold start (no earlier trials), what did well on similar factories, then the built-in strong
        configurations, are asked first (TPE only)."""
        self._warm_done = True
        if self.name != "tpe" or self.replayed or self.pending:
            return
        portfolio = "built-in portfolio: a strong default configuration of {trainer}, tried before the search"
        warm = [
            *self.context.borrowed_configs,
            *((t, p, portfolio.format(trainer=t)) for t, p in self.context.warm_configs),
        ]
        for trainer, params, why in warm:
            encoded = self.space.encode(trainer, params)
            if encoded is not None and encoded[2] not in self._seen and encoded[2] not in self._warm_keys:
                self._study.enqueue_trial(encoded[0], skip_if_exists=True)  # one that fits this factory's space
                self._warm_keys[encoded[2]] = why

    def replay(self, history: Sequence[TrialView]) -> None:
        for view in sorted(history, key=lambda v: v.trial_id):
            if view.state in ("queued", "running"):
                encoded = self.space.encode(view.trainer, view.params, view.patch)
                if encoded is None:
                    self.skipped += 1
                else:
                    self._seen.add(encoded[2])
                    self.pending += 1
                continue
            if self._add_finished(view.trainer, view.params, view, view.patch):
                self.replayed += 1
            else:
                self.skipped += 1

    def observe(self, proposal: Proposal, result: TrialView) -> None:
        if result.state in ("queued", "running"):
            return  # nothing to learn until it ends
        live = self._live.get(proposal.key)
        if live is not None and live.trainer == proposal.trainer and live.params == proposal.params:
            del self._live[proposal.key]
            self._tell(live, result)
            return
        # a proposal this study never handed out, or one from before a restart: add it as finished
        encoded = self.space.encode(proposal.trainer, proposal.params, proposal.patch)
        if encoded is None:
            self.skipped += 1
            return
        if (proposal.key, encoded[2]) in self._told:
            return  # told already
        if self._add_finished(proposal.trainer, proposal.params, result, proposal.patch):
            self._told.add((proposal.key, encoded[2]))
        else:
            self.skipped += 1

    def should_prune(self, proposal: Proposal, step: int, value: float) -> bool:
        live = self._live.get(proposal.key)
        if live is None or self._multi or live.params != proposal.params:
            return False
        if step not in live.reported:
            live.trial.report(float(value), int(step))
            live.reported.add(step)
        if self.context.pruner == "none":
            return False
        return bool(live.trial.should_prune())

    # ------------------------------------------------------------------------------------------------
    # internals

    def _propose_one(self) -> Proposal:
        reason = self._reason()
        repeated = False
        exhausted = len(self._seen) >= self.space.size
        for attempt in range(self._retries + 1):
            trial = self._study.ask()
            trainer, params, signature = self.space.suggest(trial)
            if signature not in self._seen:
                break
            if exhausted or attempt == self._retries:
                repeated = True
                break
            self._study.tell(trial, state=OptunaState.FAIL)  # discard the repeat and ask again
        self._seen.add(signature)
        if signature in self._warm_keys:
            reason = self._warm_keys.pop(signature)
        key = str(trial.number)
        self._live[key] = _Live(trial, trainer, params, signature)
        if repeated:
            if exhausted:
                reason += f"; repeats an earlier parameter set: all {self.space.size:g} were proposed already"
            else:
                reason += f"; repeats an earlier parameter set: {self._retries + 1} asks gave no new one"
        return Proposal(proposer=self.name, trainer=trainer, params=params, reason=reason, key=key)

    def _best_text(self) -> str:
        if self._multi:
            return f"{len(self.context.directions)} objectives"
        if self._best is None:
            return "no feasible trial yet"
        return f"best so far {self._best:.4g}"

    def _reason(self) -> str:
        name = self.name
        startup = self.context.startup_trials
        if name == "nsga2":
            startup = max(4, startup)
        if name in ("tpe", "cmaes", "nsga2") and self._finished < startup:
            self._startup_proposed += 1
            what = "random initial population" if name == "nsga2" else "random startup"
            return f"{what} trial {min(self._startup_proposed, startup)} of {startup}"
        done = f"{self._completed} completed trials; {self._best_text()}"
        if name == "random":
            return f"random: uniform draw after {done}"
        if name == "qmc":
            return f"qmc: next point of a scrambled Sobol sequence after {done}"
        if name == "nsga2":
            return f"nsga2: offspring of the fittest trials after {done}"
        return f"{name}: sampled after {done}"

    def _objective_values(self, result: TrialView) -> list[float] | None:
        k = len(self.context.directions)
        if result.values is not None and len(result.values) == k:
            values = [float(v) for v in result.values]
        elif k == 1 and result.value is not None:
            values = [float(result.value)]
        else:
            return None
        return values if all(math.isfinite(v) for v in values) else None

    def _count(self, state: OptunaState, values: list[float] | None, feasible: bool | None) -> None:
        if state == OptunaState.PRUNED:
            self._finished += 1
        elif state == OptunaState.COMPLETE:
            assert values is not None
            self._finished += 1
            self._completed += 1
            if feasible is not False and not self._multi:
                v = values[0]
                if self._best is None or (v > self._best if self._maximize else v < self._best):
                    self._best = v

    def _state(self, result: TrialView) -> tuple[OptunaState, list[float] | None]:
        if result.state == "completed":
            values = self._objective_values(result)
            return (OptunaState.COMPLETE, values) if values is not None else (OptunaState.FAIL, None)
        if result.state == "pruned":
            return OptunaState.PRUNED, None
        return OptunaState.FAIL, None  # failed, cancelled

    def _tell(self, live: _Live, result: TrialView) -> None:
        state, values = self._state(result)
        trial = live.trial
        if state == OptunaState.PRUNED and not self._multi:
            for step, value in sorted(result.intermediate.items()):
                if step not in live.reported:
                    trial.report(float(value), int(step))
                    live.reported.add(step)
        if state == OptunaState.COMPLETE and result.feasible is not None and self._constrained:
            trial.set_constraint(FEASIBLE_CONSTRAINT, 0.0 if result.feasible else 1.0)
        if state == OptunaState.COMPLETE:
            assert values is not None
            self._study.tell(trial, values if self._multi else values[0])
        else:
            self._study.tell(trial, state=state)
        self._count(state, values, result.feasible)
        self._told.add((str(trial.number), live.signature))

    def _add_finished(
        self, trainer: str, params: dict[str, Any], result: TrialView, patch: CodePatch | None = None
    ) -> bool:
        encoded = self.space.encode(trainer, params, patch)
        if encoded is None:
            return False
        values_in, dists, signature = encoded
        state, values = self._state(result)
        intermediate: dict[int, float] = {}
        if not self._multi:
            intermediate = {int(s): float(v) for s, v in result.intermediate.items()}
        if state == OptunaState.PRUNED and intermediate and not self._multi:
            last = intermediate[max(intermediate)]
            values = [last] if math.isfinite(last) else None
        constraints = None
        if state == OptunaState.COMPLETE and result.feasible is not None and self._constrained:
            constraints = {FEASIBLE_CONSTRAINT: 0.0 if result.feasible else 1.0}
        try:
            frozen = optuna.trial.create_trial(
                state=state,
                values=values,
                params=values_in,
                distributions=dists,
                intermediate_values=intermediate or None,
                constraints=constraints,
            )
            self._study.add_trial(frozen)
        except ValueError:
            return False
        self._seen.add(signature)
        self._count(state, values if state == OptunaState.COMPLETE else None, result.feasible)
        return True
