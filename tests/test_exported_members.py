"""Every package's ``__all__`` is sorted, names only what the package really exports, and misses nothing public."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import darkfab

PACKAGES = sorted(
    ["darkfab"]
    + [f"darkfab.{m.name}" for m in pkgutil.iter_modules(darkfab.__path__) if m.ispkg and not m.name.startswith("_")]
)


def _isort_style(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions, each alphabetical (ruff's RUF022 order)."""
    return (0 if name.isupper() else 1 if name[:1].isupper() else 2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_complete_and_resolves(name: str) -> None:
    package = importlib.import_module(name)
    exported = getattr(package, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert list(exported) == sorted(exported, key=_isort_style), f"{name}.__all__ is not sorted (isort style)"
    assert len(set(exported)) == len(exported), f"{name}.__all__ names something twice"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what the package does not define: {missing}"
    public = {
        n
        for n, value in vars(package).items()
        if not n.startswith("_")
        and not isinstance(value, types.ModuleType)
        and n not in ("annotations", "TYPE_CHECKING")
        and getattr(value, "__module__", name).startswith(name)
    }
    unlisted = sorted(public - set(exported))
    assert not unlisted, f"{name} defines public names that __all__ leaves out: {unlisted}"
