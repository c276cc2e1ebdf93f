"""Reading a factory's records: `darkfab status`, `trials`, `models`, `lineage`, and `predict` with a version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ..errors import SpecError
from ..registry import parse_version_ref
from ..results import TrialRow
from ._common import Commands, FactoryArg, JsonOpt, StoreOpt, err, json_default, open_factory, out, print_json
from ._progress import fmt

commands = Commands()


@commands.command()
def status(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Campaigns, trial counts and the champion of a factory."""
    s = open_factory(factory, store).status()
    if as_json:
        print_json(s.__dict__)
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
            f"{st.get('metric', '')} {fmt(st.get('score'))}",
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


_TRIAL_FIELDS = (
    "id",
    "campaign_id",
    "number",
    "state",
    "proposer",
    "trainer",
    "params",
    "reason",
    "value",
    "metrics",
    "reward",
    "feasible",
    "error",
    "failure_kind",
    "attempt",
    "resources",
)


def _trial_json(t: Any) -> dict[str, Any]:
    """A trial as `darkfab trials --json` prints it (its campaign's id as ``campaign``)."""
    out = {("campaign" if f == "campaign_id" else f): getattr(t, f) for f in _TRIAL_FIELDS}
    out["patch"] = t.patch.to_json() if t.patch is not None else None  # a code-edit trial's edits and diff
    return out


@commands.command()
def trials(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Every trial of a factory with its state, proposer, trainer, params and metrics."""
    rows = open_factory(factory, store).trials()
    if as_json:
        print_json([_trial_json(t) for t in rows])
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
            fmt(r.value),
            fmt(r.reward),
            (r.error or "")[:60],
        )
    out.print(t)


@commands.command()
def models(factory: FactoryArg = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Registered model versions with their aliases and sealed-test scores."""
    rows = open_factory(factory, store).models()
    if as_json:
        print_json(
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
            f"{st.get('metric', '')} {fmt(st.get('score'))}",
            m.artifact_hash[:12],
        )
    out.print(t)


@commands.command()
def lineage(
    args: Annotated[list[str], typer.Argument(help="[FACTORY] VERSION (a number or an alias such as champion)")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Where a model version came from: proposal, trainer, params, data, packages, parents."""
    if len(args) > 2:
        raise SpecError("lineage takes [FACTORY] VERSION; fix: e.g. `darkfab lineage 1`")
    ref, version = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    info = open_factory(ref, store).lineage(parse_version_ref(version, what="VERSION"))
    if as_json:
        print_json(info)
        return
    out.print_json(json.dumps(info, default=json_default))


@commands.command()
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
        from ..train import trust_script_code

        trust_script_code()
    if not 1 <= len(args) <= 2:
        raise SpecError("predict takes [FACTORY] INPUT; fix: e.g. `darkfab predict rows.csv -o out.csv`")
    ref, source = (args[0], args[1]) if len(args) == 2 else (None, args[0])

    from ..data import read_table

    if not output.parent.is_dir():
        raise SpecError(f"-o {output}: the folder {output.parent} does not exist; fix: create it, or write elsewhere")
    if output.is_dir():
        raise SpecError(f"-o {output}: is a folder; fix: give a file name, e.g. {output / 'predictions.csv'}")
    number = parse_version_ref(version, what="--version")
    f = open_factory(ref, store)
    try:
        result = f.predict(read_table(source), version=number, where=source, ignore_extra=ignore_extra)
    finally:
        f.close()
    tmp = output.with_name(output.name + ".tmp")
    try:
        result.to_csv(tmp, index=False)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)  # nothing half-written left behind
        raise
    err.print(f"wrote {len(result)} predictions to {output}")
