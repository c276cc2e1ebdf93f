"""Executors by name, imported only when used (the Ray one needs an optional extra)."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import SpecError
from ._base import Executor


def _local() -> type[Executor]:
    from ._local import LocalExecutor

    return LocalExecutor


EXECUTORS: dict[str, Callable[[], type[Executor]]] = {
    "local": _local,
}


def make_executor(backend: str) -> Executor:
    """A new, not yet started executor of the named backend."""
    if backend not in EXECUTORS:
        raise SpecError(f"unknown executor backend {backend!r}; fix: use one of {sorted(EXECUTORS)}")
    return EXECUTORS[backend]()()
