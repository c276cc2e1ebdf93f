"""The lifecycle half of `darkfab run`: the default factory's demo of the whole loop, and `--forever`.

The `run` command (run.py) calls :func:`demo` after the first campaign of the built-in factory, and
:func:`serve_forever` for `darkfab run FACTORY --forever`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import NotFoundError
from ..results import RunResult
from ..runtime import Factory, Lifecycle, Step, stored_spec
from ..store import Pauses
from ._common import on_stop_signals
from .demo import DemoResult, run_demo

_SHOWN = 160  # characters of a reason shown on a live line


def step_line(step: Step) -> str:
    """One timeline step as a plain line: time, kind, campaign, reason."""
    campaign = f" [campaign {step.campaign}]" if step.campaign is not None else ""
    reason = step.reason if len(step.reason) <= _SHOWN else step.reason[: _SHOWN - 3] + "..."
    return f"{step.at.strftime('%H:%M:%S')} {step.kind}{campaign}: {reason}"


def timeline_table(steps: list[Step], title: str = "what happened, and why") -> Table:
    t = Table(title=title, expand=False, show_lines=False)
    t.add_column("time", no_wrap=True)
    t.add_column("step", no_wrap=True)
    t.add_column("campaign", justify="right")
    t.add_column("why", overflow="fold")
    previous = ""
    for s in steps:
        if s.reason == previous:  # an alias move recorded with the decision it carries out
            continue
        previous = s.reason
        reason = s.reason if len(s.reason) <= 2 * _SHOWN else s.reason[: 2 * _SHOWN - 3] + "..."
        t.add_row(s.at.strftime("%H:%M:%S"), s.kind, "" if s.campaign is None else str(s.campaign), reason)
    return t


def demo(f: Factory, *, after_event: int, host: str, port: int, err: Console, retrain_trials: int = 30) -> DemoResult:
    """Run the demo of the whole loop on ``f`` (the built-in digits factory)."""

    err.print(
        "[bold]the whole loop[/]: serving the champion on loopback, replaying held-out digits, then a drift",
        highlight=False,
    )
    result = run_demo(
        f,
        host=host,
        port=port,
        retrain_trials=retrain_trials,
        after_event=after_event,
        on_step=lambda s: err.print(step_line(s), highlight=False, markup=False),
    )
    return result


def _latest(f: Factory) -> tuple[int | None, Any]:
    """The factory's id and its latest campaign; ``(None, None)`` before its first run."""
    try:
        fid = f.store.get_factory(f.name).id
    except NotFoundError:
        return None, None
    return fid, f.store.latest_campaign(fid)


def _has_champion(f: Factory, fid: int) -> bool:
    try:
        f.store.get_model_version(fid, "champion")
    except NotFoundError:
        return False
    return True


def _resume_spec(f: Factory) -> Factory:
    """The factory to resume with: a retraining campaign left running resumes on its own data file."""
    _, last = _latest(f)
    if last is None or last.status != "running" or last.trigger in ("first", "warm_start"):
        return f
    stored = stored_spec(f.store, f.name)
    return Factory(stored, store=f.store) if stored.data.source != f.spec.data.source else f


def needs_campaign(f: Factory) -> bool:
    """True when the factory has no champion yet, or a campaign to finish."""
    fid, last = _latest(f)
    if fid is None or (last is not None and last.status == "running"):
        return True
    return not _has_champion(f, fid)


def _paused_with_champion(f: Factory) -> bool:
    """A paused factory with a champion: `run --forever` serves it and starts no campaign (without one,
    ``Factory.run`` says it is paused)."""
    fid, _ = _latest(f)
    return fid is not None and _has_champion(f, fid) and Pauses(f.store).state(fid) is not None


def run_if_needed(f: Factory, run: Any) -> RunResult | None:
    """Run (or resume) the campaign when :func:`needs_campaign`; ``run(factory, trigger)`` does the work."""
    if not needs_campaign(f) or _paused_with_champion(f):
        return None
    target = _resume_spec(f)
    _, last = _latest(f)
    trigger = last.trigger if target is not f and last is not None else None
    return run(target, trigger)


def serve_forever(
    f: Factory,
    *,
    host: str,
    port: int,
    err: Console,
    on_progress: Any = None,
    allow_hosts: Sequence[str] = (),
    feedback_token: str | None = None,
) -> None:
    """Serve, watch and retrain ``f`` until SIGINT or SIGTERM; then flush the prediction log and stop."""
    stop = threading.Event()

    def ask_stop(signum: int, _frame: Any) -> None:
        err.print(f"{signal.Signals(signum).name}: stopping (the prediction log is flushed first)", highlight=False)
        stop.set()

    with on_stop_signals(ask_stop):
        lc = Lifecycle(
            f,
            host=host,
            port=port,
            cooldown_s=300.0,
            on_step=lambda s: err.print(step_line(s), markup=False),
            allow_hosts=allow_hosts,
            feedback_token=feedback_token,
        )
        lc.start()
        err.print(f"serving {f.name!r} at {lc.url} (Ctrl-C or SIGTERM stops it; running it again resumes)")
        lc.run_until(stop)
