"""`darkfab monitor`: the stored monitor windows of a factory, and a one-off check of new live traffic.

cli.py calls :func:`register` to add it to the `darkfab` command.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ._cli_common import StoreOpt, err
from ._cli_common import factory_name as _factory_name
from ._cli_common import fail as _fail
from .errors import DarkfabError


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


def _reference_predictions(store: Any, name: str, frame: Any) -> Any:
    """The champion's predictions on the reference, for prediction drift; None when it cannot be loaded."""
    try:
        from .registry import Registry
        from .serve import load_deployment

        deployment = load_deployment(Registry(store), name, "champion")
        sample = frame.sample(n=min(len(frame), 20_000), random_state=0) if len(frame) > 20_000 else frame
        return deployment.predict(sample)[0]
    except Exception as exc:  # prediction drift is optional; feature drift still runs
        err.print(f"note: no prediction drift ({type(exc).__name__}: {exc})", highlight=False)
        return None


def _check(store: Any, name: str) -> list[Any]:
    from .data import load_dataset
    from .monitor import Monitor
    from .spec import spec_from_dict

    spec = spec_from_dict(store.get_factory(name).spec, f"factory {name!r} as stored")
    data = load_dataset(spec)
    predictions = _reference_predictions(store, name, data.X_train)
    monitor = Monitor(store, name, data.X_train, data.feature_types, spec.monitor, predictions, task=data.task)
    return monitor.check()


def _fmt(x: Any, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}g}"


def register(app: typer.Typer) -> None:
    """Add `monitor` to ``app``."""

    @app.command()
    def monitor(
        factory: Annotated[
            str | None, typer.Argument(help="factory name or file; the store's only factory if absent")
        ] = None,
        store: StoreOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the windows as one JSON document")] = False,
        check: Annotated[
            bool, typer.Option("--check", help="first close and test the windows new live traffic fills")
        ] = False,
    ) -> None:
        """Monitor windows: drift of live traffic against the training data, live quality, triggers."""
        from .store import Store

        try:
            with Store(store) as st:
                name = _factory_name(factory, [f.name for f in st.list_factories()], st.url)
                new = _check(st, name) if check else []
                windows = st.list_monitor_windows(st.get_factory(name).id)
        except DarkfabError as exc:
            _fail(exc)
            return
        if as_json:
            sys.stdout.write(json.dumps([window_json(w) for w in windows], indent=2) + "\n")
        else:
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
            Console().print(t)
        if check:
            fired = [r for r in new if r.trigger]
            line = f"closed {len(new)} new window(s)"
            if fired:
                line += f"; window {fired[-1].number} calls for a new campaign: {fired[-1].reason}"
            err.print(line, highlight=False, soft_wrap=True)
