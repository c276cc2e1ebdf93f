"""Executors by name, imported only when used (the Ray one needs an optional extra)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import SpecError
from ._base import Executor


def _local() -> type[Executor]:
    from ._local import LocalExecutor

    return LocalExecutor


def _ray() -> type[Executor]:
    from ._ray import RayExecutor, import_ray

    import_ray()  # a SpecError that says how to install Ray, before anything else
    return RayExecutor


EXECUTORS: dict[str, Callable[[], type[Executor]]] = {
    "local": _local,
    "ray": _ray,
}


def make_executor(backend: str, /, **options: Any) -> Executor:
    """A new, not yet started executor of the named backend, made with the backend's keyword ``options``.

    For example ``make_executor("ray", address="auto", cpus_per_trial=2)``.
    """
    if backend not in EXECUTORS:
        raise SpecError(f"unknown executor backend {backend!r}; fix: use one of {sorted(EXECUTORS)}")
    cls = EXECUTORS[backend]()
    accepted = {
        name for name, p in inspect.signature(cls).parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise SpecError(
            f"executor backend {backend!r} takes no option {', '.join(map(repr, unknown))}; "
            f"fix: use only {sorted(accepted)}"
        )
    return cls(**options)
