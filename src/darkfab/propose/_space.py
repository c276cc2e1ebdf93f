"""The conditional search space as Optuna sees it: ``trainer`` first, then ``"<trainer>.<param>"``.

Inside Optuna a parameter is named after its trainer so that the trainers' spaces never collide and the
samplers see a tree-shaped space; the factory gets plain parameter names back. Entries of a space that are
not :class:`~darkfab.spec.ParamSpec` are fixed values, returned as they are and never searched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from ..errors import SpecError
from ..patch import CodePatch
from ..spec import ParamSpec
from ._base import SearchContext

TRAINER_PARAM = "trainer"
"""Optuna's name of the categorical choice between trainers (absent when there is only one trainer)."""

_PRIMITIVE = (type(None), bool, int, float, str)

Signature = tuple[str, tuple[float, ...]]
"""A hashable identity of one point of the space: the trainer and its searched values, Optuna-encoded."""


def _where(trainer: str, name: str) -> str:
    return f"the space of trainer {trainer!r}, parameter {name!r}"


def _as_int(value: float | None, what: str, where: str) -> int:
    if value is None or not float(value).is_integer():
        raise SpecError(f"{what} of an int range must be a whole number, got {value!r} in {where}")
    return int(value)


@dataclass(frozen=True)
class Dim:
    """One searched parameter of one trainer."""

    name: str  # the trainer's own parameter name
    key: str  # Optuna's name, "<trainer>.<name>"
    distribution: BaseDistribution
    choices: tuple[Any, ...] | None = None  # the original choices when Optuna sees their indices
    digits: int | None = None  # a stepped float is rounded to this many decimals (0.6, not 0.6000000000000001)

    @staticmethod
    def build(trainer: str, name: str, spec: ParamSpec) -> Dim:
        key = f"{trainer}.{name}"
        where = _where(trainer, name)
        if spec.type == "categorical":
            choices = tuple(spec.choices or ())
            distinct = all(a != b for i, a in enumerate(choices) for b in choices[i + 1 :])
            if distinct and all(type(c) in _PRIMITIVE for c in choices):
                return Dim(name, key, CategoricalDistribution(choices))
            # lists, dicts and the like are not Optuna choices: Optuna picks an index instead
            return Dim(name, key, CategoricalDistribution(tuple(range(len(choices)))), choices)
        if spec.log and spec.step is not None:
            raise SpecError(f"a range cannot have both `log: true` and `step` ({where}); drop one of them")
        if spec.type == "int":
            int_low = _as_int(spec.low, "`low`", where)
            int_high = _as_int(spec.high, "`high`", where)
            step = 1 if spec.step is None else _as_int(spec.step, "`step`", where)
            if step < 1:
                raise SpecError(f"`step` must be >= 1, got {spec.step} in {where}")
            int_high = int_low + (int_high - int_low) // step * step  # the last value the step reaches
            return Dim(name, key, IntDistribution(int_low, int_high, log=spec.log, step=step))
        assert spec.low is not None and spec.high is not None
        low, high = float(spec.low), float(spec.high)
        if spec.step is None:
            return Dim(name, key, FloatDistribution(low, high, log=spec.log))
        if spec.step <= 0:
            raise SpecError(f"`step` must be > 0, got {spec.step} in {where}")
        d_low, d_step = Decimal(str(low)), Decimal(str(spec.step))
        n = (Decimal(str(high)) - d_low) // d_step
        digits = max(0, -int(d_low.as_tuple().exponent), -int(d_step.as_tuple().exponent))
        distribution = FloatDistribution(low, float(d_low + n * d_step), step=float(spec.step))
        return Dim(name, key, distribution, digits=digits)

    def suggest(self, trial: Trial) -> tuple[Any, float]:
        """Ask ``trial`` for this parameter: (the value for the trainer, Optuna's internal float)."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            value = trial.suggest_categorical(self.key, d.choices)
            if self.choices is None:
                return value, d.to_internal_repr(value)
            index = cast(int, value)  # Optuna picks one of the indices range(len(self.choices))
            return self.choices[index], float(index)
        if isinstance(d, IntDistribution):
            number: float = trial.suggest_int(self.key, d.low, d.high, step=d.step, log=d.log)
        else:
            assert isinstance(d, FloatDistribution)
            number = trial.suggest_float(self.key, d.low, d.high, step=d.step, log=d.log)
            if self.digits is not None:
                number = round(number, self.digits)
        return number, float(number)

    def encode(self, value: Any) -> Any:
        """``value`` as Optuna stores it, or raise ValueError when it lies outside the space."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            choices = self.choices if self.choices is not None else d.choices
            exact = [i for i, c in enumerate(choices) if type(c) is type(value) and c == value]
            loose = exact or [i for i, c in enumerate(choices) if c == value]
            if not loose:
                raise ValueError(f"{value!r} is not one of the choices")
            return loose[0] if self.choices is not None else d.choices[loose[0]]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        if isinstance(d, IntDistribution):
            if not float(value).is_integer():
                raise ValueError(f"{value!r} is not a whole number")
            out: float = int(value)
        else:
            out = float(value) if self.digits is None else round(float(value), self.digits)
        if not d._contains(d.to_internal_repr(out)):  # the check Optuna itself applies in create_trial
            raise ValueError(f"{value!r} lies outside {d}")
        return out


@dataclass(frozen=True)
class TrainerSpace:
    trainer: str
    entries: tuple[tuple[str, Dim | None, Any], ...]  # (name, dim or None, fixed value) in space order
    dims: tuple[Dim, ...]
    size: float  # number of distinct points; inf when a float range has no step


def _size(dim: Dim) -> float:
    d = dim.distribution
    if isinstance(d, CategoricalDistribution):
        return float(len(d.choices))
    if isinstance(d, IntDistribution):
        return float((d.high - d.low) // d.step + 1)
    assert isinstance(d, FloatDistribution)
    if d.step is None:
        return math.inf if d.high > d.low else 1.0
    return float(round((d.high - d.low) / d.step) + 1)


class ConditionalSpace:
    """The trainers' spaces joined under one categorical ``trainer`` choice."""

    def __init__(self, context: SearchContext) -> None:
        names = [t.name for t in context.trainers]
        if not names:
            raise SpecError("the search has no trainers; list at least one under `trainers`")
        if len(set(names)) != len(names):
            raise SpecError(f"trainer names must be unique, got {names}; give each entry its own `name`")
        self.trainers: tuple[str, ...] = tuple(names)
        self.spaces: dict[str, TrainerSpace] = {}
        for trainer in names:
            entries: list[tuple[str, Dim | None, Any]] = []
            for name, entry in (context.spaces.get(trainer) or {}).items():
                if isinstance(entry, ParamSpec):
                    entries.append((name, Dim.build(trainer, name, entry), None))
                else:
                    entries.append((name, None, entry))
            dims = tuple(d for _, d, _ in entries if d is not None)
            self.spaces[trainer] = TrainerSpace(trainer, tuple(entries), dims, math.prod(_size(d) for d in dims))
        self.trainer_distribution = CategoricalDistribution(self.trainers) if len(names) > 1 else None
        self.size: float = sum(s.size for s in self.spaces.values())

    def suggest(self, trial: Trial) -> tuple[str, dict[str, Any], Signature]:
        """Ask ``trial`` for a trainer and its parameters: (trainer, plain params, signature)."""
        if self.trainer_distribution is None:
            trainer = self.trainers[0]
        else:
            trainer = str(trial.suggest_categorical(TRAINER_PARAM, self.trainers))
        space = self.spaces[trainer]
        params: dict[str, Any] = {}
        encoded: list[float] = []
        for name, dim, fixed in space.entries:
            if dim is None:
                params[name] = fixed
                continue
            params[name], internal = dim.suggest(trial)
            encoded.append(internal)
        return trainer, params, (trainer, tuple(encoded))

    def encode(
        self, trainer: str, params: dict[str, Any], patch: CodePatch | None = None
    ) -> tuple[dict[str, Any], dict[str, BaseDistribution], Signature] | None:
        """Optuna params, distributions and signature of a finished trial; None when it no longer fits.

        It fits when the trainer is still searched, every searched parameter is present and inside its
        range, every fixed parameter present has the same value, and there is no unknown parameter. A trial
        that ran edited code (``patch``) never fits: the space describes the trainer's code as written.
        """
        space = self.spaces.get(trainer)
        if space is None or patch is not None:
            return None
        known = {name for name, _, _ in space.entries}
        if any(name not in known for name in params):
            return None
        values: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}
        if self.trainer_distribution is not None:
            values[TRAINER_PARAM] = trainer
            dists[TRAINER_PARAM] = self.trainer_distribution
        encoded: list[float] = []
        for name, dim, fixed in space.entries:
            if dim is None:
                if name in params and params[name] != fixed:
                    return None
                continue
            if name not in params:
                return None
            try:
                value = dim.encode(params[name])
            except ValueError:
                return None
            values[dim.key] = value
            dists[dim.key] = dim.distribution
            encoded.append(dim.distribution.to_internal_repr(value))
        return values, dists, (trainer, tuple(encoded))
