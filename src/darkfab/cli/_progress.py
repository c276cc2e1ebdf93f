"""What `darkfab run` shows: a live progress bar and leaderboard while trials run, and the summary after."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..events import EventKind, StopReason
from ..results import Progress as RunProgress
from ..results import RunResult, TrialRow

_EDGES = (EventKind.CAMPAIGN_STARTED, EventKind.CAMPAIGN_FINISHED)


class LiveView:
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

    def __enter__(self) -> LiveView:
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
        if p.kind not in _EDGES and now - self.last < 0.25:
            return
        self.last = now
        if self.live is not None:
            self.live.update(self._render(p))
        else:
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


def fmt(v: float | None, digits: int = 4) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _leaderboard(rows: tuple[TrialRow, ...] | list[TrialRow]) -> Table:
    t = Table(title="leaderboard", expand=False)
    for col in ("trial", "proposer", "trainer", "params", "valid", "reward", "state"):
        t.add_column(col, overflow="fold" if col == "params" else "ellipsis")
    for r in rows:
        state = r.state if r.feasible is not False else f"{r.state} (infeasible)"
        t.add_row(str(r.number), r.proposer, r.trainer, r.params_summary(48), fmt(r.value), fmt(r.reward), state)
    return t


def print_summary(r: RunResult, console: Console) -> None:
    lines = [
        f"factory [bold]{r.factory}[/], campaign {r.campaign_number}"
        + (" (resumed)" if r.resumed else "")
        + (f", warm-started from {r.warm_started_from} earlier trials" if r.warm_started_from else "")
    ]
    if r.task_reason:
        lines.append(f"task: {r.task} ({r.task_reason})")
    c = r.champion
    if r.stop_reason == StopReason.PAUSED:
        lines.append(
            f"[yellow]paused[/]: stopped after its trials in flight, not gated; `darkfab resume-factory {r.factory}` "
            "and run it again to resume this campaign"
        )
    elif c is None:
        lines.append("[yellow]no champion[/]: " + (r.gate.reason if r.gate else "no candidate completed"))
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
            refit = c.refit
            if refit is not None and refit.evidence:
                lines.append(f"refit: {refit.evidence}")
            elif refit is not None and refit.why:
                lines.append(f"not refit: {refit.why}")
    if r.gate and r.gate.weak_evidence:
        lines.append(f"gate: {r.gate.reason}")
    elif r.beat:
        b = r.beat
        what = (
            f"champion v{b.version} ({b.trainer})"
            if b.kind == "champion"
            else f"the baseline that predicts the {b.name} ({b.why})"
        )
        lines.append(f"it beat {what}" + (f", which scored {b.score:.4f}" if b.score is not None else ""))
    if r.gate and not r.gate.passed:
        lines.append(f"gate: {r.gate.reason}")
    for flag in r.gate.flagged if r.gate else ():
        kinds = ", ".join(x.get("kind", "?") for x in flag.suspicions)
        lines.append(f"kept out of the gate: trial {flag.trial} ({kinds})")
    if r.gate:
        lines.append(f"sealed_uses: {r.gate.sealed_uses} of {r.gate.sealed_budget}")
    for leak in r.leaks:
        lines.append(f"leaked feature {leak['feature']!r} {leak['action']}: {leak['reason']} ({leak['rule']})")
    t = r.trials
    spent = r.budget.spent
    lines.append(
        f"trials: {t.get('completed', 0)} completed, {t.get('failed', 0)} failed, {t.get('pruned', 0)} pruned"
        + (f", {t.get('cancelled', 0)} cancelled" if t.get("cancelled") else "")
    )
    lines.append(
        f"budget spent: {spent.trials} trials, {spent.seconds:.1f}s wall, {spent.cpu_seconds:.1f}s CPU"
        + (f" ({r.stopped_because})" if r.stopped_because else "")
    )
    lines.append(f"records: {r.store}")
    console.print(Panel("\n".join(lines), title="darkfab run", expand=False), highlight=False)
