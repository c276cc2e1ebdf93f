"""The public surface of darkfab.execute, and the records' own checks."""

from __future__ import annotations

import inspect

import pytest

import darkfab.execute as execute
from darkfab.errors import SpecError
from darkfab.execute import Executor, Limits


def test_all_is_sorted_and_complete() -> None:
    assert execute.__all__ == sorted(execute.__all__)
    public = {
        name
        for name, value in vars(execute).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(execute.__all__)


def test_every_executor_implements_the_abc() -> None:
    for name, load in execute.EXECUTORS.items():
        cls = load()
        assert issubclass(cls, Executor) and not inspect.isabstract(cls), name


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout_s", 0), ("timeout_s", -1.0), ("memory_mb", 0), ("retries", -1)],
)
def test_limits_refuse_impossible_values(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=field):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_limits_defaults_and_no_memory_limit() -> None:
    assert Limits(memory_mb=None).memory_mb is None
    assert Limits().retries == 1
