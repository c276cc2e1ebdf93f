"""The `darkfab` command."""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from . import __version__
from ._cli_common import StoreOpt, err, guarded, report, set_debug
from ._cli_common import fail as _fail
from .cli_serve import AllowHostOpt, FeedbackTokenOpt
from .errors import SpecError
from .results import Progress as RunProgress
from .results import RunResult, TrialRow

if TYPE_CHECKING:
    from .runtime import Factory

app = typer.Typer(add_completion=False, no_args_is_help=True, help="darkfab: a lights-out model factory.")
audit_app = typer.Typer(help="Check the append-only event log.")
app.add_typer(audit_app, name="audit")


def _register_extensions() -> None:
    from .cli_export import register as register_export
    from .cli_levers import register as register_levers
    from .cli_monitor import register as register_monitor
    from .cli_proposals import register as register_proposals
    from .cli_reward import register as register_reward
    from .cli_serve import register as register_serve
    from .cli_ui import register as register_ui

    register_serve(app)
    register_monitor(app)
    register_proposals(app)
    register_reward(app)
    register_ui(app)
    register_export(app)
    register_levers(app)


out = Console()
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]


def _guard(fn: Callable[[], Any]) -> Any:
    return guarded(fn)


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback under an error (anywhere on the command line)")
    ] = False,
) -> None:
    if debug:
        set_debug(True)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """Send everything written to file descriptor 1 to 2 meanwhile, so stdout carries only the JSON."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def _is_file_arg(value: str) -> bool:
    return value.endswith((".yaml", ".yml")) or Path(value).is_file()


def _factory(ref: str | None, store: str | None, wait_s: float = 0.0) -> Factory:
    """A factory from a file path, a factory name in the store, or the only factory in the store."""
    from .runtime import Factory
    from .spec import default_spec
    from .store import Store

    if ref is not None and _is_file_arg(ref):
        return Factory.from_file(ref, store=store)
    st = Store(store)
    names = [f.name for f in st.list_factories()]
    deadline = time.monotonic() + wait_s
    while (not names or (ref is not None and ref not in names)) and time.monotonic() < deadline:
        time.sleep(0.5)
        names = [f.name for f in st.list_factories()]
    if ref is None:
        if len(names) == 1:
            ref = names[0]
        elif not names:
            raise SpecError(f"the store {st.url} holds no factory yet; fix: run `darkfab run` first")
        else:
            raise SpecError(
                f"the store holds several factories ({', '.join(names)}); fix: name one, e.g. "
                f"`darkfab status {names[0]}` or give its factory file"
            )
    if ref not in names:
        raise SpecError(
            f"no factory {ref!r} in the store {st.url} and no such file; fix: use one of "
            f"{', '.join(names) or '(none yet)'} or a path to a factory file"
        )
    spec = default_spec()
    raw = st.get_factory(ref).spec
    from .spec import spec_from_dict

    spec = spec_from_dict(raw, f"factory {ref!r} as stored")
    return Factory(spec, store=st)


# -- run -----------------------------------------------------------------------------------------
@app.command()
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
    from .cli_loop import demo, run_if_needed, serve_forever, timeline_table
    from .runtime import Factory, last_event_id

    lifecycle: Any = None  # the demo's DemoResult

    def campaign(f: Factory, trigger: str | None = None) -> RunResult:
        view = _LiveView(err)
        with view:
            return f.run(
                trials=trials,
                time=time_budget,
                cpu=cpu,
                workers=workers,
                seed=seed,
                on_progress=view.update,
                trigger=trigger,
            )

    def go() -> RunResult | None:
        nonlocal lifecycle
        f = Factory.from_file(factory, store=store) if factory else Factory.default(store=store)
        try:
            if forever:
                result = run_if_needed(f, campaign)
                if result is not None:
                    _print_summary(result, err)
                serve_forever(
                    f, host=host, port=port, err=err, allow_hosts=allow_host or (), feedback_token=feedback_token
                )
                return result
            loop = factory is None and not no_loop
            mark = last_event_id(f.store) if loop else 0  # the store is opened only when the data is sure
            result = campaign(f)
            if loop and result.champion is not None:
                if not as_json:
                    _print_summary(result, out)
                lifecycle = demo(f, after_event=mark, host=host, port=port, err=err)
            return result
        finally:
            f.close()

    with _stdout_to_stderr(as_json):  # libraries (Ray, C code) that print must not break the JSON
        result = _guard(go)
    if forever:
        return
    if as_json:
        doc = result.to_json()
        if lifecycle is not None:
            doc["lifecycle"] = lifecycle.to_json()
        _print_json(doc)
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
        _print_summary(result, out)


@app.command()
def worker(
    factory: Annotated[str | None, typer.Argument(help="factory file or name in the store")] = None,
    store: StoreOpt = None,
    workers: Annotated[int | None, typer.Option("--workers", help="trials this process runs at once")] = None,
    wait: Annotated[str, typer.Option("--wait", help="how long to wait for a running campaign")] = "30s",
    forever: Annotated[bool, typer.Option("--forever", help="keep waiting for the next campaign")] = False,
) -> None:
    """Join a factory as an extra worker: claim its queued trials under leases (several machines, one store)."""
    from .spec import parse_duration

    def go() -> int:
        try:
            wait_s = parse_duration(wait)
        except ValueError as exc:
            raise SpecError(f"--wait: {exc}") from None
        f = _factory(factory, store, wait_s=wait_s)
        n = f.work(workers=workers, wait=wait_s, forever=forever)
        f.close()
        return n

    n = _guard(go)
    err.print(f"worker finished {n} trial(s)")


class _LiveView:
    """A progress bar and a live leaderboard on stderr; plain lines when stderr is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[extra]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.bar.add_task("trials", total=None, extra="")
        self.live: Live | None = None
        self.last = 0.0
        self.latest: RunProgress | None = None

    def __enter__(self) -> _LiveView:
        if self.console.is_terminal:
            self.live = Live(self.bar, console=self.console, refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            if self.latest is not None:
                self.live.update(self._render(self.latest))
            self.live.__exit__(*exc)

    def update(self, p: RunProgress) -> None:
        self.latest = p
        now = time.monotonic()
        if p.kind not in ("campaign_started", "campaign_finished") and now - self.last < 0.25:
            return
        self.last = now
        if self.live is not None:
            self.live.update(self._render(p))
        elif p.kind in ("campaign_started", "campaign_finished") or now - self.last >= 0:
            best = next((r for r in p.leaderboard if r.state == "completed"), None)
            best_txt = f", best {best.value:.4f} ({best.trainer})" if best and best.value is not None else ""
            total = f"/{p.trials_total}" if p.trials_total else ""
            self.console.print(
                f"[{p.elapsed_s:6.1f}s] {p.trials_done}{total} trials{best_txt}: {p.message}", highlight=False
            )

    def _render(self, p: RunProgress) -> Group:
        extra = f"{p.elapsed_s:.0f}s" + (f" of {p.time_limit_s:.0f}s" if p.time_limit_s else "")
        self.bar.update(self.task, total=p.trials_total, completed=p.trials_done, extra=extra)
        return Group(self.bar, _leaderboard(p.leaderboard))


def _fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _leaderboard(rows: tuple[TrialRow, ...] | list[TrialRow]) -> Table:
    t = Table(title="leaderboard", expand=False)
    for col in ("trial", "proposer", "trainer", "params", "valid", "reward", "state"):
        t.add_column(col, overflow="fold" if col == "params" else "ellipsis")
    for r in rows:
        state = r.state if r.feasible is not False else f"{r.state} (infeasible)"
        t.add_row(str(r.number), r.proposer, r.trainer, r.params_summary(48), _fmt(r.value), _fmt(r.reward), state)
    return t


def _print_summary(r: RunResult, console: Console) -> None:
    lines = [
        f"factory [bold]{r.factory}[/], campaign {r.campaign_number}"
        + (" (resumed)" if r.resumed else "")
        + (f", warm-started from {r.warm_started_from} earlier trials" if r.warm_started_from else "")
    ]
    if r.task_reason:
        lines.append(f"task: {r.task} ({r.task_reason})")
    c = r.champion
    if r.stopped_because == "paused":
        lines.append(
            f"[yellow]paused[/]: stopped after its trials in flight, not gated; `darkfab resume-factory {r.factory}` "
            "and run it again to resume this campaign"
        )
    elif c is None:
        lines.append("[yellow]no champion[/]: " + (r.gate or {}).get("reason", "no candidate completed"))
    else:
        s = c.metrics.get("sealed_test", {})
        how = "new champion" if c.promoted_now else "champion unchanged"
        if c.alias == "challenger":
            how = "new challenger (served beside the champion before promotion)"
        if c.alias == "pending":
            how = f"pending approval (gate.approval: required; `darkfab approve {c.version} --reason ...`)"
        lines.append(
            f"[bold green]{how}[/]: version {c.version}, {c.trainer} "
            f"({TrialRow(0, 0, '', c.trainer, c.params, '').params_summary(70)})"
        )
        if s:
            lines.append(
                f"sealed-test {s.get('metric', r.metric)}: [bold]{s['score']:.4f}[/] "
                f"(95% CI {s['low']:.4f} to {s['high']:.4f})"
            )
        if c.promoted_now or c.alias in ("challenger", "pending"):
            refit = c.refit or {}
            if refit.get("evidence"):
                lines.append(f"refit: {refit['evidence']}")
            elif refit.get("why"):
                lines.append(f"not refit: {refit['why']}")
    if r.gate and r.gate.get("weak_evidence"):
        lines.append(f"gate: {r.gate.get('reason')}")
    elif r.beat:
        b = r.beat
        what = (
            f"champion v{b['version']} ({b.get('trainer')})"
            if b.get("kind") == "champion"
            else f"the baseline that predicts the {b.get('name')} ({b.get('why')})"
        )
        lines.append(f"it beat {what}" + (f", which scored {b['score']:.4f}" if b.get("score") is not None else ""))
    if r.gate and not r.gate.get("passed"):
        lines.append(f"gate: {r.gate.get('reason')}")
    for flag in (r.gate or {}).get("flagged", []):
        kinds = ", ".join(x.get("kind", "?") for x in flag["suspicions"])
        lines.append(f"kept out of the gate: trial {flag['trial']} ({kinds})")
    if r.gate and r.gate.get("sealed_uses") is not None:
        lines.append(f"sealed_uses: {r.gate['sealed_uses']} of {r.gate['sealed_budget']}")
    for leak in r.leaks:
        lines.append(f"leaked feature {leak['feature']!r} {leak['action']}: {leak['reason']} ({leak['rule']})")
    t = r.trials
    spent = r.budget["spent"]
    lines.append(
        f"trials: {t.get('completed', 0)} completed, {t.get('failed', 0)} failed, {t.get('pruned', 0)} pruned"
        + (f", {t.get('cancelled', 0)} cancelled" if t.get("cancelled") else "")
    )
    lines.append(
        f"budget spent: {spent['trials']} trials, {spent['seconds']:.1f}s wall, {spent['cpu_seconds']:.1f}s CPU"
        + (f" ({r.stopped_because})" if r.stopped_because else "")
    )
    lines.append(f"records: {r.store}")
    console.print(Panel("\n".join(lines), title="darkfab run", expand=False), highlight=False)


# -- init, schema --------------------------------------------------------------------------------
@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the starter file")] = Path("factory.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter factory file."""
    from .spec import STARTER

    if path.exists() and not force:
        err.print(f"[bold red]error:[/] {path} exists; fix: pick another path or add --force")
        raise typer.Exit(2)
    path.write_text(STARTER, encoding="utf-8")
    err.print(f"wrote {path}; run it with `darkfab run {path}`")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the factory file (for editors)."""
    from .spec import json_schema

    _print_json(json_schema())


# -- reading the store ---------------------------------------------------------------------------
FactoryArg = Annotated[str | None, typer.Argument(help="factory file or name; the store's only factory if absent")]


@app.command()
def status(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Campaigns, trial counts and the champion of a factory."""
    s = _guard(lambda: _factory(factory, store).status())
    if as_json:
        _print_json(s.__dict__)
        return
    t = Table(title=f"factory {s.name}")
    for col in ("campaign", "status", "trigger", "completed", "failed", "pruned", "elapsed"):
        t.add_column(col)
    for c in s.campaigns:
        n = c["trials"]
        t.add_row(
            str(c["number"]),
            c["status"],
            c["trigger"],
            str(n.get("completed", 0)),
            str(n.get("failed", 0)),
            str(n.get("pruned", 0)),
            f"{c['elapsed_s'] or 0:.1f}s",
        )
    out.print(t)
    if s.paused:
        p = s.paused
        out.print(f"paused: by {p['person']} since {p['since']}: {p['reason']}", highlight=False, markup=False)
    if s.pending:
        out.print(
            f"pending approval: version {s.pending['version']} ({s.pending['trainer']})", highlight=False, markup=False
        )
    if s.champion:
        st = s.champion["metrics"].get("sealed_test", {})
        out.print(
            f"champion: version {s.champion['version']} ({s.champion['trainer']}), sealed-test "
            f"{st.get('metric', '')} {_fmt(st.get('score'))}",
            highlight=False,
        )
    else:
        out.print("champion: none yet")
    if s.task:
        out.print(f"task: {s.task['task']} ({s.task['reason']})", highlight=False, markup=False)
    if s.sealed:
        out.print(
            f"sealed test: sealed_uses: {s.sealed['sealed_uses']} of {s.sealed['sealed_budget']} "
            f"(split seed {s.sealed['sealed_set']['split_seed']})",
            highlight=False,
        )
    for leak in s.leaks:
        out.print(
            f"leaked feature {leak.get('feature')!r}: {leak.get('rule')} ({leak.get('figure')}), "
            f"{leak.get('action', 'recorded')}",
            highlight=False,
        )
    if s.workers:
        slots = sum(w["slots"] for w in s.workers)
        names = ", ".join(w["owner"] for w in s.workers)
        out.print(f"workers: {len(s.workers)} live, {slots} slot(s): {names}", highlight=False)
    out.print(f"store: {s.store}", highlight=False)


def _trial_json(t: Any) -> dict[str, Any]:
    return {
        "id": t.id,
        "campaign": t.campaign_id,
        "number": t.number,
        "state": t.state,
        "proposer": t.proposer,
        "trainer": t.trainer,
        "params": t.params,
        "reason": t.reason,
        "value": t.value,
        "metrics": t.metrics,
        "reward": t.reward,
        "feasible": t.feasible,
        "error": t.error,
        "failure_kind": t.failure_kind,
        "attempt": t.attempt,
        "resources": t.resources,
    }


@app.command()
def trials(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every trial of a factory with its state, proposer, trainer, params and metrics."""
    rows = _guard(lambda: _factory(factory, store).trials())
    if as_json:
        _print_json([_trial_json(t) for t in rows])
        return
    t = Table(title="trials")
    for col in ("id", "campaign", "state", "proposer", "trainer", "params", "valid", "reward", "error"):
        t.add_column(col, overflow="fold")
    for r in rows:
        row = TrialRow(r.id, r.number, r.proposer, r.trainer, r.params, r.state)
        t.add_row(
            str(r.id),
            str(r.campaign_id),
            r.state,
            r.proposer,
            r.trainer,
            row.params_summary(40),
            _fmt(r.value),
            _fmt(r.reward),
            (r.error or "")[:60],
        )
    out.print(t)


@app.command()
def models(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Registered model versions with their aliases and sealed-test scores."""
    rows = _guard(lambda: _factory(factory, store).models())
    if as_json:
        _print_json(
            [
                {
                    "version": m.version,
                    "aliases": list(m.aliases),
                    "trainer": m.trainer,
                    "params": m.params,
                    "metrics": m.metrics,
                    "artifact_hash": m.artifact_hash,
                    "trial_id": m.trial_id,
                    "created_at": m.created_at,
                }
                for m in rows
            ]
        )
        return
    t = Table(title="model versions")
    for col in ("version", "aliases", "trainer", "sealed test", "artifact"):
        t.add_column(col)
    for m in rows:
        st = m.metrics.get("sealed_test", {})
        t.add_row(
            str(m.version),
            ", ".join(m.aliases),
            m.trainer,
            f"{st.get('metric', '')} {_fmt(st.get('score'))}",
            m.artifact_hash[:12],
        )
    out.print(t)


_LARGEST_VERSION = 2**63 - 1  # a store's integer column


def _version_ref(v: str, what: str = "--version") -> int | str:
    ref = v.removeprefix("v")
    if not ref.isdigit():
        return ref
    number = int(ref)
    if number > _LARGEST_VERSION:
        raise SpecError(
            f"{what} {v}: no model version has a number that large; fix: give a version listed by "
            "`darkfab models`, or an alias such as champion"
        )
    return number


@app.command()
def lineage(
    args: Annotated[list[str], typer.Argument(help="[FACTORY] VERSION (a number or an alias such as champion)")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a model version came from: proposal, trainer, params, data, packages, parents."""
    if len(args) > 2:
        _fail(SpecError("lineage takes [FACTORY] VERSION; fix: e.g. `darkfab lineage 1`"))
    ref, version = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    info = _guard(lambda: _factory(ref, store).lineage(_version_ref(version, "VERSION")))
    if as_json:
        _print_json(info)
        return
    out.print_json(json.dumps(info, default=_json_default))


@app.command()
def predict(
    args: Annotated[list[str], typer.Argument(help="[FACTORY] INPUT (CSV or Parquet)")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the predictions (CSV)")],
    version: Annotated[str, typer.Option("--version", help="model version or alias")] = "champion",
    store: StoreOpt = None,
    trust_code: Annotated[
        bool, typer.Option("--trust-code", help="allow a model trained by a script to run its code in this process")
    ] = False,
    ignore_extra: Annotated[
        bool, typer.Option("--ignore-extra", help="score without the columns the model does not read")
    ] = False,
) -> None:
    """Score a file with the champion (or --version), as `mlflow models predict` does.

    Every row is checked first, as the model server checks a request: a numeric value that is text,
    infinite or too large stops the command (exit 2) naming the row, the column and the value.
    """
    if trust_code:
        from .train import trust_script_code

        trust_script_code()
    if not 1 <= len(args) <= 2:
        _fail(SpecError("predict takes [FACTORY] INPUT; fix: e.g. `darkfab predict rows.csv -o out.csv`"))
    ref, source = (args[0], args[1]) if len(args) == 2 else (None, args[0])

    def go() -> int:
        from .data import read_table

        if not output.parent.is_dir():
            raise SpecError(
                f"-o {output}: the folder {output.parent} does not exist; fix: create it, or write elsewhere"
            )
        if output.is_dir():
            raise SpecError(f"-o {output}: is a folder; fix: give a file name, e.g. {output / 'predictions.csv'}")
        number = _version_ref(version)
        f = _factory(ref, store)
        try:
            frame = read_table(source)
            result = f.predict(frame, version=number, where=source, ignore_extra=ignore_extra)
        finally:
            f.close()
        tmp = output.with_name(output.name + ".tmp")
        try:
            result.to_csv(tmp, index=False)
            tmp.replace(output)
        except BaseException:
            tmp.unlink(missing_ok=True)  # nothing half-written left behind
            raise
        return len(result)

    n = _guard(go)
    err.print(f"wrote {n} predictions to {output}")


@audit_app.command("verify")
def audit_verify(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the hash chain of the event log; exit 1 if an event was altered or removed."""
    from .store import Store

    def go() -> Any:
        with Store(store) as s:
            return s.verify_chain()

    report = _guard(go)
    if as_json:
        _print_json(report.__dict__)
    else:
        colour = "green" if report.ok else "red"
        out.print(f"[{colour}]{escape(report.message)}[/] ({report.checked} events checked)", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(
    store: StoreOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write the head here (default: stdout)")] = None,
) -> None:
    """Write the verified head of the event log (factories, count, last hash, time) as JSON for a notary.

    Exits 1 without writing when the log does not verify: a notary must never vouch for a rewritten log.
    """
    from .store import Store

    def go() -> tuple[Any, dict[str, Any]]:
        with Store(store) as s:
            report = s.verify_chain()
            return report, s.audit_head() if report.ok else {}

    report, head = _guard(go)
    if not report.ok:
        err.print(f"[red]not exported: the log does not verify:[/] {escape(report.message)}", highlight=False)
        raise typer.Exit(1)
    text = json.dumps(head, indent=2) + "\n"
    if output is None:
        out.print(text, end="", highlight=False, markup=False, soft_wrap=True)
        return
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(output)
    err.print(f"wrote the head of {head['count']} events to {output}")


db_app = typer.Typer(help="Store maintenance.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(store: StoreOpt = None) -> None:
    """Migrate the store's tables to this version of darkfab (in place; safe to run twice)."""
    from .store import current_revision, head_revision, resolve_store_url, upgrade

    def go() -> tuple[str | None, str, bool]:
        from .store import Store

        url = resolve_store_url(store)
        before = current_revision(url)
        upgrade(url)
        with Store(url) as s:
            keyed = s.key_legacy_chain()
        return before, url, keyed

    before, url, keyed = _guard(go)
    out.print(f"store {url}: revision {before or '(empty)'} -> {head_revision()}", highlight=False)
    if keyed:
        out.print("the unkeyed event log of an older darkfab is keyed from now on (event chain_keyed)")


@app.command()
def version() -> None:
    """Print darkfab's version."""
    out.print(__version__)


_register_extensions()


def main() -> None:
    """The `darkfab` command: every error, from any command, goes through one handler (`report`)."""
    args = sys.argv[1:]
    if "--debug" in args:  # accepted anywhere, also after the command's own options
        set_debug(True)
        args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="darkfab")
    except (Exception, KeyboardInterrupt) as exc:
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
