"""`darkfab monitor`: the stored monitor windows of a factory, and a one-off check of new live traffic."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ._common import Commands, FactoryArg, JsonOpt, StoreOpt, err

commands = Commands()


def window_json(w: Any) -> dict[str, Any]:
    """A stored window as the JSON `darkfab monitor --json` prints."""
    return {
        "window": w.number,
        "version": w.version,
        "opened_at": w.opened_at.isoformat(),
        "closed_at": w.closed_at.isoformat(),
        "rows": w.rows,
        "first_prediction_id": w.first_prediction_id,
        "last_prediction_id": w.last_prediction_id,
        "share_drifted": w.share_drifted,
        "dataset_drift": w.dataset_drift,
        "prediction_drift": w.prediction_drift,
        "drifted_columns": [c["column"] for c in w.drift.get("columns", []) if c.get("drifted")],
        "drift": w.drift,
        "quality": w.quality,
        "triggered": w.triggered,
        "reason": w.reason,
    }


def _fmt(x: Any, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}g}"


@commands.command()
def monitor(
    factory: FactoryArg = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    check: Annotated[
        bool, typer.Option("--check", help="first close and test the windows new live traffic fills")
    ] = False,
) -> None:
    """Monitor windows: drift of live traffic against the training data, live quality, triggers."""
    from ..runtime import build_monitor, resolve_factory
    from ..store import Store

    with Store(store) as st:
        name = resolve_factory(st, factory)
        new = build_monitor(st, name, "champion", note=_note).check() if check else []
        windows = st.list_monitor_windows(st.get_factory(name).id)
    if as_json:
        sys.stdout.write(json.dumps([window_json(w) for w in windows], indent=2) + "\n")
    else:
        Console().print(_table(name, windows))
    if check:
        fired = [r for r in new if r.trigger]
        line = f"closed {len(new)} new window(s)"
        if fired:
            line += f"; window {fired[-1].number} calls for a new campaign: {fired[-1].reason}"
        err.print(line, highlight=False, soft_wrap=True)


def _note(text: str) -> None:
    err.print(f"note: {text}", highlight=False)


def _table(name: str, windows: list[Any]) -> Table:
    t = Table(title=f"monitor windows of {name}")
    for col in ("window", "version", "rows", "share drifted", "dataset drift", "prediction drift", "quality"):
        t.add_column(col)
    t.add_column("triggered / reason", overflow="fold")
    for w in windows:
        q = w.quality
        quality = f"{q.get('metric')} {_fmt(q.get('value'))} (n={q.get('labelled', 0)})"
        verdict = ("yes: " if w.triggered else "") + (w.reason or "-")
        t.add_row(
            str(w.number),
            str(w.version),
            str(w.rows),
            f"{w.share_drifted:.2f}",
            "yes" if w.dataset_drift else "no",
            "yes" if w.prediction_drift else "no",
            quality,
            verdict,
        )
    return t
