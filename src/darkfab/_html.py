"""Small HTML tables for notebooks (``_repr_html_``): every value escaped, no styling beyond the notebook's."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any


def fmt(value: Any) -> str:
    """A value as short escaped text: floats to 4 significant digits, dicts as ``k=v`` pairs."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = "NaN" if math.isnan(value) else f"{value:.4g}"
    elif isinstance(value, Mapping):
        text = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
    else:
        text = str(value)
    return html.escape(text)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, caption: str = "") -> str:
    """``rows`` as an HTML table with one column per name in ``columns``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fields(items: Mapping[str, Any], *, caption: str = "") -> str:
    """A two-column table: one row per name and value."""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(v)}</td></tr>" for k, v in items.items())
    return f"<table>{cap}<tbody>{body}</tbody></table>"


def sealed(metrics: Mapping[str, Any]) -> str:
    """``metric score [low, high]`` of a sealed-test summary, or an empty string."""
    s = metrics.get("sealed_test") or {}
    if not s.get("metric"):
        return ""
    return f"{s['metric']} {s.get('score', math.nan):.4g} [{s.get('low', math.nan):.4g}, {s.get('high', math.nan):.4g}]"
