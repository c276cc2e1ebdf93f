"""Redaction: every secret the factory knows is masked before text is stored or shown to a model.

A secret is the value (at least :data:`MIN_SECRET_CHARS` characters) of an environment variable whose name
holds KEY, TOKEN, SECRET, PASSWORD, PASS or CREDENTIAL, any value given as ``extra``, the password of a
``scheme://user:PASSWORD@host`` URL in any environment value, and such a password written in the text itself. The store applies :func:`redact` on its write
path (trial errors and log tails, LLM calls, every event), so nothing downstream can forget it.

Redaction masks what the factory knows; a secret it was never told (a value in a file a trainer reads) is
out of its reach, which is why the sandbox keeps such files away from trials in the first place.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "MIN_SECRET_CHARS", "SECRET_NAME", "known_secrets", "redact", "redact_value"]

MASK = "***"
MIN_SECRET_CHARS = 6
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASS|CREDENTIAL", re.IGNORECASE)
# scheme://user:password@host, the password being everything up to the last '@' before the host
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)(?=@)")


def known_secrets(environ: Mapping[str, str] | None = None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The secret values of ``environ`` (default: this process's environment) and ``extra``."""
    env = os.environ if environ is None else environ
    found = {v for k, v in env.items() if SECRET_NAME.search(k)}
    found.update(extra)
    # the password of any URL in the environment (DARKFAB_STORE, a proxy) or among the secrets is one too: it
    # may be written into another URL, or alone
    for value in [*env.values(), *found]:
        if "://" in value:
            found.update(m.group("password") for m in _URL_PASSWORD.finditer(value))
    return frozenset(v for v in found if len(v.strip()) >= MIN_SECRET_CHARS)


@functools.lru_cache(maxsize=8)
def _ordered(secrets: frozenset[str]) -> tuple[str, ...]:
    return tuple(sorted(secrets, key=len, reverse=True))  # a secret inside a longer one: the longer first


def redact(text: str, secrets: frozenset[str] | None = None) -> str:
    """``text`` with every URL password and every one of ``secrets`` (default: :func:`known_secrets`) masked."""
    if not text:
        return text
    for secret in _ordered(known_secrets() if secrets is None else secrets):
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


def redact_value(value: Any, secrets: frozenset[str] | None = None) -> Any:
    """A JSON-like value (dicts, lists, strings) with :func:`redact` applied to every string, keys included."""
    found = known_secrets() if secrets is None else secrets
    if isinstance(value, str):
        return redact(value, found)
    if isinstance(value, dict):
        return {redact_value(k, found): redact_value(v, found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v, found) for v in value]
    return value
