"""`parse_version_ref`: the one reading of `3`, `v3` and `champion` every command shares."""

from __future__ import annotations

import pytest

from darkfab.errors import SpecError
from darkfab.registry import LARGEST_VERSION, parse_version_ref


@pytest.mark.parametrize(("value", "ref"), [("3", 3), ("v3", 3), (" 12 ", 12), ("champion", "champion")])
def test_numbers_and_aliases(value: str, ref: int | str) -> None:
    assert parse_version_ref(value) == ref


@pytest.mark.parametrize("value", ["0", "1e3", "", "²", "-1", str(LARGEST_VERSION + 1)])
def test_other_forms_name_the_value_the_forms_and_the_fix(value: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_version_ref(value, what="--version")
    text = str(info.value)
    assert "--version must be a version number" in text and repr(value) in text and "fix:" in text


def test_too_large_says_so() -> None:
    with pytest.raises(SpecError, match="no model version has a number that large"):
        parse_version_ref("99999999999999999999")


def test_numbers_only_refuses_aliases_and_the_v_prefix() -> None:
    assert parse_version_ref("4", aliases=False) == 4
    for value in ("v4", "champion"):
        with pytest.raises(SpecError, match=f"got {value!r}"):
            parse_version_ref(value, aliases=False)
