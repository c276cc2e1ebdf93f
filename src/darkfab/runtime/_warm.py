"""A new factory's first search starts from what did well on factories of the same store with similar data.

Each finished campaign keeps its data's meta-features (``data_profile`` in its summary: rows, columns, numeric
share, missing share, classes). A factory with no trials of its own looks for factories of the same task whose
latest profile is within :data:`SIMILAR_DISTANCE`, nearest first, and asks their best completed configurations
before the built-in portfolio and the model-based search. Only built-in trainers both factories search are
borrowed, and only parameters inside this factory's own space (the proposer drops the rest): a borrowed
configuration is a starting point the search scores like any other, never a score.
"""

from __future__ import annotations

from typing import Any

from ..data import DataProfile
from ..errors import DarkfabError
from ..spec import FactorySpec, spec_from_dict
from ..store import FactoryRecord, Store
from ..train import BUILTINS

SIMILAR_DISTANCE = 1.0
"""Farthest profile borrowed from (:meth:`DataProfile.distance`: ten times the rows alone is 1 apart)."""
SIMILAR_FACTORIES = 3
"""Nearest factories borrowed from."""
CONFIGS_EACH = 2
"""Best configurations borrowed from each."""


def _builtin_names(spec: FactorySpec) -> set[str]:
    """The trainers of ``spec`` that are darkfab's own (not an estimator path or a script under a built-in name)."""
    return {t.name for t in spec.trainers if t.name in BUILTINS and t.estimator is None and t.script is None}


def _latest_profile(store: Store, factory: FactoryRecord) -> DataProfile | None:
    for campaign in reversed(store.list_campaigns(factory.id)):
        profile = DataProfile.from_dict((campaign.summary or {}).get("data_profile"))
        if profile is not None:
            return profile
    return None


def borrowed_configs(
    store: Store, spec: FactorySpec, profile: DataProfile, factory_id: int
) -> tuple[tuple[str, dict[str, Any], str], ...]:
    """(trainer, params, why) of the best trials of the nearest similar factories, for a cold start."""
    mine = _builtin_names(spec)
    near: list[tuple[float, FactoryRecord, DataProfile, set[str]]] = []
    for other in store.list_factories():
        if other.id == factory_id:
            continue
        theirs = _latest_profile(store, other)
        if theirs is None or (d := profile.distance(theirs)) > SIMILAR_DISTANCE:
            continue
        try:
            shared = mine & _builtin_names(spec_from_dict(other.spec, f"factory {other.name!r} as stored"))
        except DarkfabError:
            continue  # a stored file this version cannot read: nothing to borrow from it
        if shared:
            near.append((d, other, theirs, shared))
    out: list[tuple[str, dict[str, Any], str]] = []
    for d, other, theirs, shared in sorted(near, key=lambda n: (n[0], n[1].id))[:SIMILAR_FACTORIES]:
        done = [
            t
            for t in store.list_trials(factory_id=other.id, states=("completed",))
            if t.trainer in shared and t.feasible and t.reward is not None and t.patch is None
        ]
        for t in sorted(done, key=lambda t: (-float(t.reward or 0.0), t.id))[:CONFIGS_EACH]:
            why = (
                f"warm start from factory {other.name!r} (similar data, distance {d:.2f}: {theirs.describe()}): "
                f"its trial {t.id} ({t.trainer}, reward {float(t.reward or 0.0):.4g}), tried before the search"
            )
            out.append((t.trainer, dict(t.params), why))
    return tuple(out)
