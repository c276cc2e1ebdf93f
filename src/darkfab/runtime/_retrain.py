"""Retraining data: the reference rows plus every labelled live row, as a new source of the same factory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data import read_source
from ..results import RunResult
from ..spec import FactorySpec
from ..store import Store


def retraining_frame(base: FactorySpec, store: Store, factory_id: int) -> tuple[pd.DataFrame, int]:
    """The reference rows (``base.data.source``) plus every labelled live row, and how many live rows joined.

    A live row is its logged features with its feedback label as the target; columns the server never sees
    (group, time, excluded) are left empty on live rows.
    """
    reference = read_source(base.data.source, base.data.query)
    reference.columns = [str(c) for c in reference.columns]
    target = base.data.target or "target"
    labelled = store.list_predictions(factory_id, labelled=True)
    if not labelled:
        return reference, 0
    live = pd.DataFrame.from_records([{**r.features, target: r.label} for r in labelled])
    live = live[[c for c in reference.columns if c in live.columns]]
    for col in live.columns:
        want = reference[col].dtype
        if pd.api.types.is_numeric_dtype(want) and not pd.api.types.is_numeric_dtype(live[col].dtype):
            live[col] = pd.to_numeric(live[col], errors="coerce")
        elif pd.api.types.is_integer_dtype(want) and live[col].notna().all():
            live[col] = live[col].astype(want)
    frame = pd.concat([reference, live], ignore_index=True)
    return frame, len(live)


def derived_spec(base: FactorySpec, source: Path) -> FactorySpec:
    """``base`` with ``data.source`` pointing at ``source`` (and no query): the same factory, on new rows."""
    data = base.data.model_copy(update={"source": str(source.resolve()), "query": None})
    return base.model_copy(update={"data": data})


def outcome(result: RunResult, n_live: int, rows: int, path: Path) -> str:
    data = f"{rows} rows ({n_live} labelled live rows) in {path.name}"
    c = result.champion
    gate = result.gate.reason if result.gate else ""
    if c is not None and (c.promoted_now or c.alias in ("challenger", "pending")):
        role = {"champion": "new champion", "challenger": "new challenger"}.get(c.alias, "pending approval:")
        return f"campaign {result.campaign_number} on {data}: {role} v{c.version} ({c.trainer}); gate: {gate}"
    return f"campaign {result.campaign_number} on {data}: no new model; gate: {gate or 'no candidate'}"
