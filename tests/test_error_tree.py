"""errors.py draws the whole error tree: every DarkfabError subclass darkfab defines is named in it."""

from __future__ import annotations

import importlib
import pkgutil

import darkfab
from darkfab import errors


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_the_tree_names_every_error_class() -> None:
    for module in pkgutil.walk_packages(darkfab.__path__, "darkfab."):
        if not module.name.split(".")[-1].startswith("__"):
            try:
                importlib.import_module(module.name)
            except ImportError:  # an optional extra (Ray, MLflow) that this install lacks
                continue
    ours = {c for c in _subclasses(errors.DarkfabError) if c.__module__.startswith("darkfab.")}
    assert len(ours) > 15
    tree = errors.__doc__ or ""
    missing = sorted(c.__name__ for c in ours if c.__name__ not in tree)
    assert not missing, f"errors.py's tree omits {missing}"
