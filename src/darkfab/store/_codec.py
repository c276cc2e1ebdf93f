"""How values become JSON in the store, and how an event's hash is computed.

JSON columns accept what factories naturally hold: numpy scalars become numbers, tuples and sets become
lists, paths and datetimes become strings. NaN and infinity become ``null``: neither PostgreSQL nor
strict JSON can hold them, and a metric that is not a number is a missing metric.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

GENESIS = "0" * 64  # the prev_hash of the first event


def _default(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) == ():
        return item()  # a numpy scalar (or 0-d array)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()  # a numpy array
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    raise TypeError(
        f"a value of type {type(value).__name__} ({shown}) cannot be stored as JSON; "
        "fix: convert it to a str, number, bool, None, list or dict first"
    )


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """JSON text for a column; the engine's ``json_serializer``."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_default)
    except ValueError:
        # NaN or infinity somewhere (possibly inside a numpy value): convert, then try again
        plain = json.loads(json.dumps(value, default=_default))
        return json.dumps(_finite(plain), separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def normalize(value: Any) -> Any:
    """The value exactly as it will read back from a JSON column."""
    return json.loads(dumps(value))


def canonical(value: Any) -> str:
    """Sorted keys, no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


EVENT_FIELDS = ("created_at", "kind", "reason", "factory_id", "campaign_id", "trial_id", "data")
"""Every field of an event but its id and hashes: what its hash covers."""


def event_body(fields: Mapping[str, Any]) -> str:
    """The canonical JSON of an event's :data:`EVENT_FIELDS` (``created_at`` a datetime): what its hash covers."""
    body = {name: fields[name] for name in EVENT_FIELDS}
    body["created_at"] = body["created_at"].isoformat()
    return canonical(body)


def event_hash(prev_hash: str, **fields: Any) -> str:
    """The legacy (unkeyed) rule: sha256 over the previous hash and :func:`event_body`.

    Anyone can recompute it, so it proves nothing against someone who can write the store; stores keep it
    only for the events written before their chain was keyed (see ``_audit``).
    """
    return hashlib.sha256((prev_hash + event_body(fields)).encode("utf-8")).hexdigest()


def keyed_event_hash(key: bytes, prev_hash: str, **fields: Any) -> str:
    """HMAC-SHA256 with the store's audit key over the previous hash and :func:`event_body`."""
    return hmac.new(key, (prev_hash + event_body(fields)).encode("utf-8"), hashlib.sha256).hexdigest()
