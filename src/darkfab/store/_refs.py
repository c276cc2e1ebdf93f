"""Which factory a reference means, and the spec a factory was last run with, rebuilt from the store.

One answer for every caller: the command line, the console, the lifecycle loop (through
:mod:`darkfab.runtime`, which re-exports these) and the model server (:func:`darkfab.serve.serve`,
which sits below the runtime) all ask here, so they fail with the same message.
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import SpecError
from ..spec import FactorySpec, load_spec, spec_from_dict
from ._store import Store


def is_factory_file(ref: str) -> bool:
    """True when ``ref`` names a factory file rather than a factory in the store."""
    return ref.endswith((".yaml", ".yml")) or Path(ref).is_file()


def resolve_factory(store: Store, ref: str | None, *, wait_s: float = 0.0) -> str:
    """The name of the factory ``ref`` means: a factory file's factory, a name in the store, or (``ref`` None)
    the store's only factory. ``wait_s``: how long to wait for it to appear (a worker started before its run).

    A :class:`SpecError` names the store, the factories it holds and the fix when none fits.
    """
    if ref is not None and is_factory_file(ref):
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
