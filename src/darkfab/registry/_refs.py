"""Reading a model version reference as a person types it: ``3``, ``v3`` or an alias such as ``champion``."""

from __future__ import annotations

import re

from ..errors import SpecError

LARGEST_VERSION = 2**63 - 1
"""The largest number a store's integer column holds; no version number is larger."""

_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def parse_version_ref(value: str, *, what: str = "VERSION", aliases: bool = True) -> int | str:
    """A version number (``3``, or ``v3`` where aliases are accepted) or an alias (``champion``).

    With ``aliases=False`` only a plain number from 1 up is accepted (a decision names one version exactly).
    A value of another form, or a number larger than any version can be, is a :class:`SpecError` naming
    ``what``, the value, the accepted forms and the fix.
    """
    text = value.strip()
    bare = text.removeprefix("v") if aliases else text
    number = int(bare) if bare.isascii() and bare.isdigit() else None
    if number is not None and 1 <= number <= LARGEST_VERSION:
        return number
    if aliases and number is None and _ALIAS.fullmatch(text):
        return text
    forms = "a version number (1, 2, ...)"
    if aliases:
        forms = "a version number (1, 2, ..., or v1) or an alias such as champion"
    large = " (no model version has a number that large)" if number is not None and number > LARGEST_VERSION else ""
    raise SpecError(f"{what} must be {forms}, got {value!r}{large}; fix: give a version listed by `darkfab models`")
