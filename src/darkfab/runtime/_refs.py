"""What a reference means: which factory a name, a file or nothing names and a stored spec rebuilt (both
decided in :mod:`darkfab.store`, so the model server below the runtime asks the same function); the data a
version was trained on and the monitor that judges its live traffic. The command line, the console and the
lifecycle loop all ask here, so they answer each question the same way and fail with the same message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..data import Dataset, load_dataset
from ..errors import DarkfabError, NotFoundError
from ..monitor import Alerter, Monitor
from ..spec import FactorySpec
from ..store import Store, stored_spec

log = logging.getLogger("darkfab.refs")

PREDICTION_SAMPLE = 20_000
"""Rows of the training reference the version predicts, for prediction drift (a sample beyond that)."""


def reference_of(
    store: Store, name: str, version: int | str, base: FactorySpec | None = None
) -> tuple[FactorySpec, Dataset]:
    """The spec and data ``version`` was trained on (matched by its data fingerprint): the stored spec's or
    ``base``'s; when neither matches, ``base``'s (else the stored spec's)."""
    try:
        wanted = store.get_model_version(store.get_factory(name).id, version).lineage.get("data_fingerprint")
    except NotFoundError:  # no such version yet: the stored spec's data
        wanted = None
    candidates: list[FactorySpec] = [] if base is None else [base]
    try:
        candidates.insert(0, stored_spec(store, name))
    except DarkfabError:
        if base is None:
            raise
    fallback = candidates[-1]
    first: tuple[FactorySpec, Dataset] | None = None
    for spec in candidates:
        try:
            data = load_dataset(spec)
        except DarkfabError:
            continue
        if data.fingerprint == wanted:
            return spec, data
        if spec is fallback:
            first = (spec, data)
    return first if first is not None else (fallback, load_dataset(fallback))


def build_monitor(
    store: Store,
    name: str,
    version: int | str,
    *,
    base: FactorySpec | None = None,
    max_age_s: float | None = None,
    alerter: Alerter | None = None,
    note: Callable[[str], None] | None = None,
) -> Monitor:
    """The monitor of ``version``'s live traffic against the data it was trained on (:func:`reference_of`),
    with ``base``'s monitor settings (the stored spec's without ``base``). `darkfab monitor --check` and the
    lifecycle loop both build it here, so they judge a window alike. ``note`` hears why prediction drift is
    off (the version could not be loaded); feature drift runs regardless."""
    spec, data = reference_of(store, name, version, base)
    settings = (base or spec).monitor
    predictions = None
    try:
        from ..registry import Registry
        from ..serve import load_deployment

        frame = data.X_train
        if len(frame) > PREDICTION_SAMPLE:
            frame = frame.sample(n=PREDICTION_SAMPLE, random_state=0)
        predictions = load_deployment(Registry(store), name, version).predict(frame)[0]
    except Exception as exc:  # prediction drift is optional; feature drift still runs
        (note or log.info)(f"no prediction drift for {name!r} v{version} ({type(exc).__name__}: {exc})")
    return Monitor(
        store,
        name,
        data.X_train,
        data.feature_types,
        settings,
        predictions,
        task=data.task,
        max_age_s=max_age_s,
        alerter=alerter,
    )
