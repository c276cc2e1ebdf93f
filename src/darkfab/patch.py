"""The code change a trial runs: every package that carries a trial's code edit speaks this one type.

A code-edit trial (proposer ``llm_code``) changes its script trainer's editable blocks. The change travels
with the proposal, the stored trial, the training request and the console as :class:`CodePatch`, never
inside ``params`` (those hold hyperparameters only). ``None`` means the trial runs its trainer's code as
written; a ``CodePatch`` with no edits is the user's own script run as a code-edit trial's reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

EDIT_FIELDS = ("block", "search", "replace")


@dataclass(frozen=True)
class CodePatch:
    """A script trainer's code change: ``edits`` from the user's script (a parent's first) and their ``diff``.

    Each edit is ``{"block": NAME, "search": TEXT, "replace": TEXT}`` (``darkfab.train.apply_edits`` applies
    them); ``diff`` is the unified diff of the patched script against the user's, for people to read.
    """

    edits: tuple[dict[str, str], ...] = ()
    diff: str = ""

    def __post_init__(self) -> None:
        edits = tuple(_edit(e, i) for i, e in enumerate(self.edits))
        object.__setattr__(self, "edits", edits)
        if not isinstance(self.diff, str):
            raise ValueError(f"CodePatch.diff must be text (a unified diff), got {type(self.diff).__name__}")

    def edit_list(self) -> list[dict[str, str]]:
        """The edits as a JSON-ready list of fresh dicts."""
        return [dict(e) for e in self.edits]

    def to_json(self) -> dict[str, Any]:
        """``{"edits": [...], "diff": "..."}``: how the audit log, lineage and ``--json`` output show it."""
        return {"edits": self.edit_list(), "diff": self.diff}

    @classmethod
    def of(cls, edits: Sequence[Mapping[str, Any]] | None, diff: str | None) -> CodePatch | None:
        """The patch of two stored columns; None when both are NULL (a trial that edits no code)."""
        if edits is None and diff is None:
            return None
        return cls(tuple(dict(e) for e in edits or ()), diff or "")


def _edit(edit: Any, i: int) -> dict[str, str]:
    if (
        not isinstance(edit, Mapping)
        or set(edit) != set(EDIT_FIELDS)
        or not all(isinstance(edit[k], str) for k in EDIT_FIELDS)
    ):
        raise ValueError(
            f"CodePatch.edits[{i}] must be {{'block': ..., 'search': ..., 'replace': ...}} of three strings, "
            f"got {edit!r:.120}"
        )
    return {k: edit[k] for k in EDIT_FIELDS}
