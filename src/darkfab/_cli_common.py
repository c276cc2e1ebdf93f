"""Pieces every command module shares: the error console, the --store option, failing with the right code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from .errors import DataError, SpecError

err = Console(stderr=True)

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="store URL (default: $DARKFAB_STORE or ./.darkfab/darkfab.db)")
]


def fail(exc: BaseException) -> NoReturn:
    """Print the error and exit: 2 for the user's input (a spec or data problem), 1 for the rest."""
    # the message is text, not markup: `pip install 'darkfab[mlflow]'` must keep its brackets
    err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(2 if isinstance(exc, (SpecError, DataError)) else 1)


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
