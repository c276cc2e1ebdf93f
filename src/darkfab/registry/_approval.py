"""A person's approval of a gate winner (``gate.approval: required``).

The gate registers its winner under the alias ``pending`` instead of ``champion`` (or ``challenger``), and
writes in the version's lineage which alias the winner would have taken (``lineage["approval"]["then"]``).
:func:`approve` then makes exactly that alias move, :func:`reject` drops ``pending`` and leaves the champion.
Each is ONE transaction guarded on ``pending`` still pointing at the version (two people acting at once:
the second gets an error), with its event naming the person and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import NotFoundError, StoreError
from ..store import checked_text

if TYPE_CHECKING:
    from ._registry import Registry

PENDING = "pending"
APPROVAL_REQUESTED = "approval_requested"
APPROVED = "promotion_approved"
REJECTED = "promotion_rejected"
MAX_REASON = 500
MAX_PERSON = 80


@dataclass(frozen=True)
class Decision:
    """What :func:`approve` or :func:`reject` did: the version, the alias it now holds (None after a
    rejection), the person and the reason."""

    factory: str
    version: int
    alias: str | None
    person: str
    reason: str


def _pending_version(registry: Registry, factory: str, version: int, verb: str) -> int:
    """The factory's id when ``version`` is its pending version; errors that say what is pending otherwise."""
    fid = registry.store.get_factory(factory).id
    known = [v.version for v in registry.store.list_model_versions(fid)]
    if version not in known:
        raise NotFoundError(
            f"factory {factory!r} has no version {version}; its versions are {known or 'none yet'}; "
            f"fix: {verb} the pending version (`darkfab models {factory}` lists them)"
        )
    held = registry.store.aliases(fid).get(PENDING)
    if held != version:
        now = f"version {held} is" if held is not None else "no version is"
        raise StoreError(
            f"version {version} of {factory!r} is not pending approval ({now}); only the gate winner that "
            f"waits as {PENDING!r} can be approved or rejected; fix: "
            + (f"{verb} version {held}" if held is not None else "wait for a gate winner (gate.approval: required)")
        )
    return fid


def approve(registry: Registry, factory: str, version: int, *, person: str, reason: str) -> Decision:
    """Make the pending ``version`` what the gate would have made it (``champion``, or ``challenger`` under a
    canary or shadow deploy with a champion in place), in one transaction with the event ``promotion_approved``."""
    person = checked_text(person, what="the person", option="pass --by NAME", limit=MAX_PERSON)
    reason = checked_text(reason, what="the reason", option="pass --reason 'why'", limit=MAX_REASON)
    fid = _pending_version(registry, factory, version, "approve")
    record = registry.store.get_model_version(fid, version)
    approval = record.lineage.get("approval")
    target = str(approval.get("then", "champion")) if isinstance(approval, dict) else "champion"
    if target != "champion" and "champion" not in registry.store.aliases(fid):
        target = "champion"  # the champion it was to be judged against is gone: nothing to stand beside
    done = registry.store.change_aliases(
        fid,
        reason=f"approved by {person}: {reason}; version {version} becomes {target}",
        expect={PENDING: version},
        move={target: version},
        delete=(PENDING,),
        kind=APPROVED,
        data={"version": version, "alias": target, "person": person, "reason": reason},
    )
    if not done:
        raise StoreError(f"version {version} of {factory!r} stopped being pending meanwhile; fix: look again")
    return Decision(factory=factory, version=version, alias=target, person=person, reason=reason)


def reject(registry: Registry, factory: str, version: int, *, person: str, reason: str) -> Decision:
    """Drop the pending ``version`` (it stays registered, holding no alias) and leave the champion, in one
    transaction with the event ``promotion_rejected``."""
    person = checked_text(person, what="the person", option="pass --by NAME", limit=MAX_PERSON)
    reason = checked_text(reason, what="the reason", option="pass --reason 'why'", limit=MAX_REASON)
    fid = _pending_version(registry, factory, version, "reject")
    done = registry.store.change_aliases(
        fid,
        reason=f"rejected by {person}: {reason}; version {version} is not promoted",
        expect={PENDING: version},
        delete=(PENDING,),
        kind=REJECTED,
        data={"version": version, "person": person, "reason": reason},
    )
    if not done:
        raise StoreError(f"version {version} of {factory!r} stopped being pending meanwhile; fix: look again")
    return Decision(factory=factory, version=version, alias=None, person=person, reason=reason)
