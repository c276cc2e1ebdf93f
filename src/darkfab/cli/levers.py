"""A person's levers on the command line: `darkfab approve` / `reject` a pending gate winner,
`darkfab pause-factory` / `resume-factory` a factory's trials.

(`darkfab pause` / `resume`, without the suffix, are older and act on a running model server: they stop and
restart its answers, see serve.py. Pausing a factory stops its trials and leaves serving alone.) Each action is an event with the person and
the reason; a mistake (unknown version, nothing pending, no reason) is one line naming the value and the fix.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import SpecError
from ._common import Commands, FactoryArg, FactoryOpt, StoreOpt, err

if TYPE_CHECKING:
    from ..registry import Decision

commands = Commands()

ReasonOpt = Annotated[str | None, typer.Option("--reason", help="why (required; recorded in the event log)")]
ByOpt = Annotated[str | None, typer.Option("--by", help="who acts (recorded; default: $DARKFAB_USER or your login)")]


def _person(by: str | None) -> str:
    if by is not None:
        return by
    try:
        return os.environ.get("DARKFAB_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in a bare container
        return "unknown"


def _reason(reason: str | None, command: str) -> str:
    if reason is None or not reason.strip():
        raise SpecError(
            f"--reason is required and was {reason!r}: every `darkfab {command}` is recorded with why; "
            f"fix: add --reason 'TEXT'"
        )
    return reason


def _decision(verb: str) -> Callable[..., None]:
    """The command that approves or rejects (``verb``) the pending gate winner."""

    def command(
        version: Annotated[str, typer.Argument(help="the pending version's number")],
        reason: ReasonOpt = None,
        by: ByOpt = None,
        factory: FactoryOpt = None,
        store: StoreOpt = None,
    ) -> None:
        d = _decide(verb, version, reason, by, factory, store)
        if verb == "approve":
            line = f"version {d.version} of {d.factory!r} is now {d.alias} (approved by {d.person})"
        else:
            line = f"version {d.version} of {d.factory!r} rejected by {d.person}; champion unchanged"
        err.print(line, highlight=False)

    return command


commands.command(
    "approve",
    help="Approve the gate winner waiting as `pending` (gate.approval: required): it becomes champion (or "
    "challenger under a canary or shadow deploy) exactly as an automatic promotion would.",
)(_decision("approve"))
commands.command(
    "reject",
    help="Reject the gate winner waiting as `pending`: it stays registered, the champion stays as it is.",
)(_decision("reject"))


@commands.command("pause-factory")
def pause_factory(
    factory: FactoryArg = None,
    reason: ReasonOpt = None,
    by: ByOpt = None,
    store: StoreOpt = None,
) -> None:
    """Pause a factory's trials: `run`, `run --forever` and the workers start no new trial (a running campaign
    stops after the trials in flight, with the stop reason `paused`) until `darkfab resume-factory`. Serving
    goes on (`darkfab pause` pauses a model server)."""
    name = _pause(factory, reason, by, store, resume=False)
    err.print(f"factory {name!r} paused; `darkfab resume-factory {name}` lets it run again", highlight=False)


@commands.command("resume-factory")
def resume_factory(
    factory: FactoryArg = None,
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")] = "resumed from the command line",
    by: ByOpt = None,
    store: StoreOpt = None,
) -> None:
    """Resume a paused factory: its next `darkfab run` resumes the campaign the pause stopped."""
    name = _pause(factory, reason, by, store, resume=True)
    err.print(f"factory {name!r} resumed", highlight=False)


def _decide(
    verb: str, version: str, reason: str | None, by: str | None, factory: str | None, url: str | None
) -> Decision:
    from ..registry import Registry, parse_version_ref
    from ..runtime import mirror_aliases, resolve_factory
    from ..spec import RegistrySpec
    from ..store import Store

    why = _reason(reason, verb)
    number = int(parse_version_ref(version, aliases=False))
    st = Store(url)
    try:
        name = resolve_factory(st, factory)
        registry = Registry(st)
        act = registry.approve if verb == "approve" else registry.reject
        decision = act(name, number, person=_person(by), reason=why)
        stored = st.get_factory(name).spec.get("registry") or {}
        target = RegistrySpec.model_validate(stored).mlflow  # validated when the factory last ran
        mirror_aliases(st, name, target, why=f"version {number} {verb.rstrip('e')}ed by {decision.person}")
        return decision
    finally:
        st.close()


def _pause(factory: str | None, reason: str | None, by: str | None, url: str | None, *, resume: bool) -> str:
    from ..runtime import resolve_factory
    from ..store import Pauses, Store

    why = reason if resume else _reason(reason, "pause-factory")
    st = Store(url)
    try:
        name = resolve_factory(st, factory)
        pauses = Pauses(st)
        fid = st.get_factory(name).id
        if resume:
            pauses.resume(fid, person=_person(by), reason=why or "")
        else:
            pauses.pause(fid, person=_person(by), reason=why or "")
        return name
    finally:
        st.close()
