"""What a reference means: which factory a name, a file or nothing names; a stored spec rebuilt; the monitor
that judges a version's live traffic. The command line, the console and the lifecycle loop all ask here, so
they answer each question the same way and fail with the same message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from ..data import Dataset, load_dataset
from ..errors import DarkfabError, NotFoundError, SpecError
from ..monitor import Alerter, Monitor
from ..spec import FactorySpec, spec_from_dict
from ..store import Store

log = logging.getLogger("darkfab.refs")

PREDICTION_SAMPLE = 20_000
"""Rows of the training reference the version predicts, for prediction drift (a sample beyond that)."""


def is_factory_file(ref: str) -> bool:
    """True when ``ref`` names a factory file rather than a factory in the store."""
    return ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def resolve_factory(store: Store, ref: str | None, *, wait_s: float = 0.0) -> str:
    """The name of the factory ``ref`` means: a factory file's factory, a name in the store, or (``ref`` None)
    the store's only factory. ``wait_s``: how long to wait for it to appear (a worker started before its run).

    A :class:`SpecError` names the store, the factories it holds and the fix when none fits.
    """
    if ref is not None and is_factory_file(ref):
        from ..spec import load_spec

        ref = load_spec(ref).name
    names = [f.name for f in store.list_factories()]
    deadline = time.monotonic() + wait_s
    while (not names or (ref is not None and ref not in names)) and time.monotonic() < deadline:
        time.sleep(0.5)
        names = [f.name for f in store.list_factories()]
    if ref is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise SpecError(f"the store {store.url} holds no factory yet; fix: run `darkfab run` first")
        raise SpecError(
            f"the store holds several factories ({', '.join(names)}); fix: name one (e.g. {names[0]}) "
            "or give its factory file"
        )
    if ref not in names:
        raise SpecError(
            f"no factory {ref!r} in the store {store.url} and no such file; fix: use one of "
            f"{', '.join(names) or '(none yet)'} or a path to a factory file"
        )
    return ref


def stored_spec(store: Store, name: str) -> FactorySpec:
    """The spec ``name`` was last run with, rebuilt from the store."""
    return spec_from_dict(store.get_factory(name).spec, f"factory {name!r} as stored")


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
