"""`darkfab run` (a campaign; with the built-in factory, the demo of the whole loop; `--forever`, the service)
and `darkfab worker` (an extra worker on a shared store)."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import SpecError
from ..results import RunResult
from ._common import (
    Commands,
    FactoryArg,
    JsonOpt,
    StoreOpt,
    err,
    on_stop_signals,
    open_factory,
    out,
    print_json,
    stdout_to_stderr,
)
from ._progress import LiveView, print_summary
from .serve import AllowHostOpt, FeedbackTokenOpt

if TYPE_CHECKING:
    from ..runtime import Factory
    from .demo import DemoResult

commands = Commands()


@commands.command()
def run(
    factory: Annotated[str | None, typer.Argument(help="factory file; the built-in digits factory when absent")] = None,
    trials: Annotated[int | None, typer.Option("--trials", help="trial budget (overrides the file)")] = None,
    time_budget: Annotated[str | None, typer.Option("--time", help="wall-time budget, e.g. 90s, 10m")] = None,
    cpu: Annotated[str | None, typer.Option("--cpu", help="CPU-time budget, e.g. 30m")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="parallel trials")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of the search")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
    no_loop: Annotated[
        bool, typer.Option("--no-loop", help="built-in factory: stop after the campaign, skip the demo of the loop")
    ] = False,
    forever: Annotated[
        bool,
        typer.Option("--forever", help="after the campaign, serve, watch and retrain until SIGINT/SIGTERM"),
    ] = False,
    host: Annotated[str, typer.Option("--host", help="address the model server listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="port of the model server; 0 picks a free one")] = 0,
    allow_host: AllowHostOpt = None,
    feedback_token: FeedbackTokenOpt = None,
) -> None:
    """Run the factory: resume its unfinished campaign or start a new one, gate and register the winner.

    With no file (and no --no-loop) it then shows the whole loop: serve the champion, replay traffic,
    inject a drift, detect it, retrain, canary, promote, and print the timeline. --forever keeps the
    factory running as a service (a restart resumes it).
    """
    from ..runtime import Factory, last_event_id
    from .lifecycle import demo, run_if_needed, serve_forever

    lifecycle: DemoResult | None = None

    budget: dict[str, Any] = {"trials": trials, "time": time_budget, "cpu": cpu, "workers": workers, "seed": seed}

    def campaign(f: Factory, trigger: str | None = None) -> RunResult:
        with LiveView(err) as view:
            return f.run(**budget, on_progress=view.update, trigger=trigger)

    with stdout_to_stderr(as_json):  # libraries (Ray, C code) that print must not break the JSON
        f = Factory.from_file(factory, store=store) if factory else Factory.default(store=store)
        try:
            if forever:
                result = run_if_needed(f, campaign)
                if result is not None:
                    print_summary(result, err)
                serve_forever(
                    f, host=host, port=port, err=err, allow_hosts=allow_host or (), feedback_token=feedback_token
                )
                return
            loop = factory is None and not no_loop
            mark = last_event_id(f.store) if loop else 0  # the store is opened only when the data is sure
            result = campaign(f)
            if loop and result.champion is not None:
                if not as_json:
                    print_summary(result, out)
                lifecycle = demo(f, after_event=mark, host=host, port=port, err=err)
        finally:
            f.close()
    _show(result, lifecycle, as_json=as_json, store=store)


def _show(result: RunResult, lifecycle: DemoResult | None, *, as_json: bool, store: str | None) -> None:
    from .lifecycle import timeline_table

    if as_json:
        doc: dict[str, Any] = result.to_json()
        if lifecycle is not None:
            doc["lifecycle"] = lifecycle.to_json()
        print_json(doc)
    elif lifecycle is not None:
        out.print(timeline_table(lifecycle.steps))
        out.print(
            f"{lifecycle.requests} requests served at {lifecycle.url} (drifted from request {lifecycle.drift_at} "
            f"on); champion now: version {lifecycle.champion}",
            highlight=False,
        )
        out.print(
            f"watch and steer it in the console: darkfab ui{f' --store {store}' if store else ''}", highlight=False
        )
    else:
        print_summary(result, out)


@commands.command()
def worker(
    factory: FactoryArg = None,
    store: StoreOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="trials this process runs at once")] = None,
    wait: Annotated[str, typer.Option("--wait", help="how long to wait for a running campaign")] = "30s",
    forever: Annotated[bool, typer.Option("--forever", help="keep waiting for the next campaign")] = False,
) -> None:
    """Join a factory as an extra worker: claim its queued trials under leases (several machines, one store)."""
    from ..spec import parse_duration

    try:
        wait_s = parse_duration(wait)
    except ValueError as exc:
        raise SpecError(f"--wait: {exc}") from None

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    with on_stop_signals(interrupt):  # SIGTERM (a cluster stopping the machine) stops a worker as Ctrl-C does
        f = open_factory(factory, store, wait_s=wait_s)
        n = f.work(workers=workers, wait=wait_s, forever=forever)
        f.close()
    err.print(f"worker finished {n} trial(s)")
