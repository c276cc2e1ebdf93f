"""Pieces every command module shares: the error console, the --store option, and the one error handler.

Every command reaches :func:`report` when something goes wrong, whether through :func:`fail`, :func:`guarded`
or :func:`darkfab.cli.main`: a person sees one line naming the problem and the fix, never a traceback
(``--debug`` adds it), and the exit code says whose fault it was.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from .errors import DarkfabError, DataError, SpecError

err = Console(stderr=True)
T = TypeVar("T")

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="store URL (default: $DARKFAB_STORE or ./.darkfab/darkfab.db)")
]

EXIT_INTERRUPTED = 130
_debug = False


def set_debug(on: bool) -> None:
    """``--debug``: print the traceback under each error message."""
    global _debug
    _debug = on


def report(exc: BaseException) -> int:
    """Tell the user what went wrong and return the exit code.

    2: the user's input or environment (a spec, data, an option, a path); 1: anything else; 130: interrupted.
    """
    if isinstance(exc, KeyboardInterrupt):
        err.print("interrupted; run the same command again to resume")
        return EXIT_INTERRUPTED
    if _debug:
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
    code = 1
    if isinstance(exc, DarkfabError):
        text = str(exc)
        code = 2 if isinstance(exc, (SpecError, DataError)) else 1
    elif isinstance(exc, OSError) and exc.filename is not None:
        text = f"{exc.filename}: {exc.strerror or exc}; fix: check the path and its permissions"
        code = 2
    else:
        first = (str(exc).splitlines() or [""])[0]
        text = (
            f"unexpected {type(exc).__name__}: {first}; this is a bug in darkfab; fix: run the command again "
            "with --debug to see where, and report it"
        )
    err.print(f"[bold red]error:[/] {escape(text)}", highlight=False, markup=True, soft_wrap=True)
    return code


def fail(exc: BaseException) -> NoReturn:
    """Report the error and exit with its code."""
    raise typer.Exit(report(exc))


def guarded(fn: Callable[[], T]) -> T:
    """``fn()``, with any error (and Ctrl-C) reported by :func:`report`; typer's own exits pass through."""
    try:
        return fn()
    except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
        raise
    except (Exception, KeyboardInterrupt) as exc:
        fail(exc)


def factory_name(ref: str | None, names: list[str], url: str) -> str:
    """The factory a command means: a file's factory, a name in the store, or the store's only factory."""
    if ref is not None and (ref.endswith((".yaml", ".yml")) or Path(ref).is_file()):
        from .spec import load_spec

        ref = load_spec(ref).name
    if ref is None:
        if len(names) == 1:
            return names[0]
        if not names:
            raise SpecError(f"the store {url} holds no factory yet; fix: run `darkfab run` first")
        raise SpecError(f"the store holds several factories ({', '.join(names)}); fix: name one, e.g. `{names[0]}`")
    if ref not in names:
        raise SpecError(f"no factory {ref!r} in the store {url}; fix: use one of {', '.join(names) or '(none yet)'}")
    return ref
