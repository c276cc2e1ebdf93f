"""How worn the sealed test set is: the gate decisions it has informed, and a fresh split past its budget.

A sealed set is the data's fingerprint plus the seed its rows were split with. Every ``gate_verdict`` event
that read sealed rows names its set (``data["sealed_set"]``), so the count is derived from the audit log.
When a new campaign starts and its set has informed ``gate.sealed_budget`` decisions, the rows are split
again with a fresh seed and a ``sealed_set_rotated`` event says why; campaigns and ``darkfab worker``
processes read the seed from that event, so every process sees the same split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..data import Dataset, load_dataset
from ..events import EventKind
from ..spec import FactorySpec
from ..store import Store


@dataclass(frozen=True)
class SealedSet:
    """A sealed test set and how many gate decisions it has informed, against its budget."""

    fingerprint: str
    split_seed: int
    uses: int
    budget: int

    def as_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "split_seed": self.split_seed}

    def summary(self, *, uses: int | None = None) -> dict[str, Any]:
        """The gate summary's fields: ``sealed_uses: k`` of ``sealed_budget: N`` and the set."""
        return {
            "sealed_uses": self.uses if uses is None else uses,
            "sealed_budget": self.budget,
            "sealed_set": self.as_json(),
        }


def _rotations(store: Store, factory_id: int, spec: FactorySpec, fingerprint: str) -> list[dict[str, Any]]:
    return [
        e.data
        for e in store.list_events(factory_id=factory_id, kinds=(EventKind.SEALED_SET_ROTATED,))
        if e.data.get("fingerprint") == fingerprint and e.data.get("spec_seed") == spec.data.split.seed
    ]


def current_seed(store: Store, factory_id: int, spec: FactorySpec, fingerprint: str) -> int:
    """The split seed in force for this data: the latest rotation's, else the factory file's."""
    rotations = _rotations(store, factory_id, spec, fingerprint)
    return int(rotations[-1]["new_seed"]) if rotations else spec.data.split.seed


def uses_of(store: Store, factory_id: int, fingerprint: str, split_seed: int) -> int:
    """Gate decisions recorded against the sealed set (fingerprint, split seed)."""
    wanted = {"fingerprint": fingerprint, "split_seed": split_seed}
    return sum(
        1
        for e in store.list_events(factory_id=factory_id, kinds=(EventKind.GATE_VERDICT,))
        if e.data.get("sealed_set") == wanted
    )


def with_current_split(store: Store, factory_id: int, spec: FactorySpec, data: Dataset) -> Dataset:
    """``data`` split with the seed in force (reloaded only when a rotation changed it)."""
    seed = current_seed(store, factory_id, spec, data.fingerprint)
    return data if seed == data.split_seed else load_dataset(spec, split_seed=seed)


def sealed_set(store: Store, factory_id: int, spec: FactorySpec, data: Dataset) -> SealedSet:
    return SealedSet(
        fingerprint=data.fingerprint,
        split_seed=data.split_seed,
        uses=uses_of(store, factory_id, data.fingerprint, data.split_seed),
        budget=spec.gate.sealed_budget,
    )


def rotate_if_worn(store: Store, *, factory_id: int, spec: FactorySpec, data: Dataset) -> Dataset:
    """Before a new campaign: past ``gate.sealed_budget``, split the rows afresh (on record) and return that data."""
    current = sealed_set(store, factory_id, spec, data)
    if current.uses < current.budget:
        return data
    if spec.data.time:
        store.append_event(
            kind=EventKind.SEALED_SET_WORN,
            reason=(
                f"the sealed test set has informed {current.uses} gate decisions, its budget (gate.sealed_budget "
                f"= {current.budget}), but data.time makes it the newest rows, which a fresh seed cannot change; "
                "fix: add newer labelled rows to the data (a new fingerprint starts a new sealed set)"
            ),
            factory_id=factory_id,
            data={"fingerprint": data.fingerprint, "uses": current.uses, "budget": current.budget},
        )
        return data
    seen = [spec.data.split.seed, data.split_seed]
    seen += [int(r["new_seed"]) for r in _rotations(store, factory_id, spec, data.fingerprint)]
    new_seed = max(seen) + 1
    fresh = load_dataset(spec, split_seed=new_seed)
    store.append_event(
        kind=EventKind.SEALED_SET_ROTATED,
        reason=(
            f"the sealed test set (split seed {data.split_seed}) has informed {current.uses} gate decisions, "
            f"its budget (gate.sealed_budget = {current.budget}); the rows are split again with seed {new_seed} "
            "so retraining does not select for the same sealed rows"
        ),
        factory_id=factory_id,
        data={
            "fingerprint": data.fingerprint,
            "spec_seed": spec.data.split.seed,
            "old_seed": data.split_seed,
            "new_seed": new_seed,
            "uses": current.uses,
            "budget": current.budget,
        },
    )
    return fresh
