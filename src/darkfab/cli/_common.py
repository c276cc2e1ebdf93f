"""What every command module shares: the consoles, the one error guard, the shared options, JSON output, and
:class:`Commands`, the one way a module declares its commands.

Every command runs inside :func:`guard`: whatever goes wrong reaches :func:`report`, so a person sees one line
naming the problem and the fix, never a traceback (``--debug`` adds it), and the exit code says whose fault it was.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import click
import typer
from rich.console import Console
from rich.markup import escape

from ..errors import DarkfabError, DataError, SpecError

if TYPE_CHECKING:
    from ..runtime import Factory

err = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])

EXIT_INTERRUPTED = 130
_debug = False

StoreOpt = Annotated[
    str | None, typer.Option("--store", help="store URL (default: $DARKFAB_STORE or ./.darkfab/darkfab.db)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
FactoryArg = Annotated[str | None, typer.Argument(help="factory file or name; the store's only factory if absent")]
FactoryOpt = Annotated[
    str | None, typer.Option("--factory", help="factory name or file; the store's only factory if absent")
]


def set_debug(on: bool) -> None:
    """``--debug``: print the traceback under each error message."""
    global _debug
    _debug = on


@contextlib.contextmanager
def on_stop_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for SIGINT and SIGTERM while the block runs, the previous handlers after it. Set explicitly for
    SIGINT too: a process started in the background of a script inherits SIGINT ignored."""
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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


def guard(fn: F) -> F:
    """``fn`` with any error (and Ctrl-C) reported by :func:`report`; typer's own exits pass through."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except (Exception, KeyboardInterrupt) as exc:
            fail(exc)

    return guarded  # type: ignore[return-value]


@dataclass
class Commands:
    """The commands of one module: declared with ``@commands.command()``, each run inside :func:`guard`, and
    added to an app by ``commands.register(app)``. ``commands.group(name, help)`` declares a sub-command group
    (``darkfab audit ...``) whose commands are declared the same way."""

    _adds: list[Callable[[typer.Typer], None]] = field(default_factory=list)

    def command(self, name: str | None = None, *, help: str | None = None) -> Callable[[F], F]:
        """Declare a command: ``name`` defaults to the function's, ``help`` to its docstring."""

        def declare(fn: F) -> F:
            def add(app: typer.Typer) -> None:
                app.command(name, help=help)(guard(fn))

            self._adds.append(add)
            return fn

        return declare

    def group(self, name: str, help: str) -> Commands:
        sub = Commands()

        def add(app: typer.Typer) -> None:
            group = typer.Typer(help=help)
            sub.register(group)
            app.add_typer(group, name=name)

        self._adds.append(add)
        return sub

    def register(self, app: typer.Typer) -> None:
        """Add these commands to ``app``."""
        for add in self._adds:
            add(app)


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (dates, arrays, sets and the rest made readable)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


@contextlib.contextmanager
def stdout_to_stderr(active: bool) -> Iterator[None]:
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


def open_factory(ref: str | None, store: str | None, wait_s: float = 0.0) -> Factory:
    """The :class:`darkfab.runtime.Factory` ``ref`` means: from its file, or as stored (see ``resolve_factory``)."""
    from ..runtime import Factory, is_factory_file, resolve_factory, stored_spec
    from ..store import Store

    if ref is not None and is_factory_file(ref):
        return Factory.from_file(ref, store=store)
    st = Store(store)
    try:
        return Factory(stored_spec(st, resolve_factory(st, ref, wait_s=wait_s)), store=st)
    except BaseException:
        st.close()
        raise
