"""Keeping the store honest: `darkfab audit verify|export` (the event log's hash chain) and `darkfab db upgrade`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ._common import Commands, JsonOpt, StoreOpt, err, out, print_json

commands = Commands()
audit = commands.group("audit", help="Check the append-only event log.")
db = commands.group("db", help="Store maintenance.")


@audit.command("verify")
def audit_verify(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the hash chain of the event log; exit 1 if an event was altered or removed."""
    from ..store import Store

    with Store(store) as s:
        report = s.verify_chain()
    if as_json:
        print_json(report.__dict__)
    else:
        colour = "green" if report.ok else "red"
        out.print(f"[{colour}]{escape(report.message)}[/] ({report.checked} events checked)", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@audit.command("export")
def audit_export(
    store: StoreOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="write the head here (default: stdout)")] = None,
) -> None:
    """Write the verified head of the event log (factories, count, last hash, time) as JSON for a notary.

    Exits 1 without writing when the log does not verify: a notary must never vouch for a rewritten log.
    """
    from ..store import Store

    with Store(store) as s:
        report = s.verify_chain()
        head = s.audit_head() if report.ok else {}
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


@db.command("upgrade")
def db_upgrade(store: StoreOpt = None) -> None:
    """Migrate the store's tables to this version of darkfab (in place; safe to run twice)."""
    from ..store import Store, current_revision, head_revision, resolve_store_url, upgrade

    url = resolve_store_url(store)
    before = current_revision(url)
    upgrade(url)
    with Store(url) as s:
        keyed = s.key_legacy_chain()
    out.print(f"store {url}: revision {before or '(empty)'} -> {head_revision()}", highlight=False)
    if keyed:
        out.print("the unkeyed event log of an older darkfab is keyed from now on (event chain_keyed)")
