"""The `darkfab` command: the root app, assembled from the command modules, and :func:`main`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from . import export, factory_file, levers, maintenance, monitor, proposals, records, run, serve, teach, ui
from ._common import Commands, out, report, set_debug

app = typer.Typer(add_completion=False, no_args_is_help=True, help="darkfab: a lights-out model factory.")
commands = Commands()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="show the traceback under an error (anywhere on the command line)")
    ] = False,
) -> None:
    if debug:
        set_debug(True)


@commands.command()
def version() -> None:
    """Print darkfab's version."""
    out.print(__version__)


for module in (run, factory_file, records, maintenance, serve, monitor, proposals, teach, ui, export, levers):
    module.commands.register(app)
commands.register(app)


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
