"""User training scripts whose marked blocks an LLM may edit, and the models they make.

The script contract (see docs/SANDBOX.md)::

    # darkfab: editable loss
    loss_fn = torch.nn.CrossEntropyLoss()
    # darkfab: end loss

    def train(X, y, X_valid, params, report):
        ...            # X, X_valid: preprocessed float matrices; y: class index or float target
        return model   # has predict_proba (classification) / predict (regression), or is such a function

``params`` holds the trial's parameters (keys starting with ``_`` removed) plus ``seed``, ``task``,
``n_classes`` and ``threads`` unless the trial sets them. ``report(step, valid_predictions) -> bool`` returns
True when the trial must stop (the script may then return early or raise ``darkfab.errors.TrialPruned``).

Edits are ``{"block": name, "search": text, "replace": text}``: ``search`` must occur exactly once inside
the named block, and the result may not touch a marker. The patched text must parse.

A model made by a script carries the patched source. Unpickling it executes that source, so it is refused
unless the process trusts generated code: :func:`trust_script_code`, or ``DARKFAB_TRUST_CODE=1``. darkfab's
own workers trust it only inside the sandbox (darkfab.execute._sandbox).
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import os
import pickle
import re
import sys
import tempfile
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DarkfabError
from ..patch import CodePatch
from ..spec import TaskKind
from ._prep import Flavour
from ._trainers import FitContext, Trainer

_MARK = re.compile(r"^[ \t]*#[ \t]*darkfab:[ \t]*(editable|end)[ \t]+([A-Za-z_][\w-]*)[ \t]*$", re.MULTILINE)
_ANY_MARK = re.compile(r"#[ \t]*darkfab:", re.IGNORECASE)
TRUST_ENV = "DARKFAB_TRUST_CODE"
_trusted = False

__all__ = [
    "TRUST_ENV",
    "Block",
    "ScriptError",
    "ScriptEstimator",
    "ScriptTrainer",
    "UntrustedCodeError",
    "apply_edits",
    "block_texts",
    "check_parses",
    "code_trusted",
    "editable_blocks",
    "load_module",
    "scratch_dir",
    "source_hash",
    "trust_script_code",
    "unified_diff",
]


class ScriptError(DarkfabError, ValueError):
    """A training script, or an edit to it, breaks the script contract. The message names the rule and fix."""


class UntrustedCodeError(DarkfabError, PermissionError):
    """Loading this model would execute generated code in a process that has not opted in."""


def trust_script_code(trusted: bool = True) -> None:
    """Allow (or forbid again) this process to load models whose pickles carry a training script."""
    global _trusted
    _trusted = trusted


def code_trusted() -> bool:
    return _trusted or os.environ.get(TRUST_ENV, "") == "1"


@dataclass(frozen=True)
class Block:
    name: str
    start: int  # offset of the first character after the opening marker's line
    end: int  # offset of the first character of the closing marker's line


def editable_blocks(source: str) -> dict[str, Block]:
    """The editable blocks of a script, by name. Raises ScriptError on unbalanced or nested markers."""
    blocks: dict[str, Block] = {}
    open_name: str | None = None
    open_at = 0
    for m in _MARK.finditer(source):
        kind, name = m.group(1), m.group(2)
        line = source.count("\n", 0, m.start()) + 1
        if kind == "editable":
            if open_name is not None:
                raise ScriptError(
                    f"line {line}: block {name!r} opens inside block {open_name!r}; "
                    f"fix: close it first with `# darkfab: end {open_name}`"
                )
            if name in blocks:
                raise ScriptError(f"line {line}: block {name!r} is declared twice; fix: give each block its own name")
            open_name = name
            nl = source.find("\n", m.end())
            open_at = len(source) if nl < 0 else nl + 1
        else:
            if open_name != name:
                raise ScriptError(
                    f"line {line}: `# darkfab: end {name}` closes no open block"
                    + (f" (block {open_name!r} is open)" if open_name else "")
                    + "; fix: pair each `# darkfab: editable NAME` with `# darkfab: end NAME`"
                )
            blocks[name] = Block(name, open_at, m.start())
            open_name = None
    if open_name is not None:
        raise ScriptError(f"block {open_name!r} is never closed; fix: add `# darkfab: end {open_name}`")
    return blocks


def block_texts(source: str) -> dict[str, str]:
    """The current text of each editable block, by name."""
    return {name: source[b.start : b.end] for name, b in editable_blocks(source).items()}


def apply_edits(source: str, edits: Sequence[Mapping[str, Any]]) -> str:
    """Apply search-and-replace edits, each inside its named block, in order; check the result parses.

    Raises ScriptError naming the edit (by position) and what is wrong with it.
    """
    if not isinstance(edits, (list, tuple)):
        raise ScriptError(f"edits must be a list of {{block, search, replace}} objects, got {type(edits).__name__}")
    text = source
    for i, edit in enumerate(edits):
        where = f"edit {i + 1}"
        if not isinstance(edit, Mapping) or set(edit) - {"block", "search", "replace"}:
            raise ScriptError(f"{where}: must be an object with exactly `block`, `search`, `replace`; got {edit!r}")
        name, search, replace = edit.get("block"), edit.get("search"), edit.get("replace")
        if not all(isinstance(v, str) for v in (name, search, replace)):
            raise ScriptError(f"{where}: `block`, `search` and `replace` must all be strings")
        assert isinstance(name, str) and isinstance(search, str) and isinstance(replace, str)  # for mypy
        blocks = editable_blocks(text)
        if name not in blocks:
            raise ScriptError(f"{where}: no editable block {name!r}; the blocks are: {', '.join(blocks) or 'none'}")
        if not search:
            raise ScriptError(f"{where}: `search` is empty; fix: quote the exact lines of block {name!r} to replace")
        if _ANY_MARK.search(search) or _ANY_MARK.search(replace):
            raise ScriptError(f"{where}: edits may not add, move or remove `# darkfab:` markers")
        b = blocks[name]
        body = text[b.start : b.end]
        count = body.count(search)
        if count == 0:
            hint = " (it occurs outside the block)" if search in text else ""
            raise ScriptError(
                f"{where}: the search text is not in block {name!r}{hint}; fix: copy it exactly from the block"
            )
        if count > 1:
            raise ScriptError(
                f"{where}: the search text occurs {count} times in block {name!r}; fix: quote more lines so it "
                "is unique"
            )
        text = text[: b.start] + body.replace(search, replace, 1) + text[b.end :]
    check_parses(text)
    return text


def check_parses(source: str, filename: str = "<script>") -> None:
    try:
        ast.parse(source, filename=filename)
    except SyntaxError as err:
        raise ScriptError(f"the patched script does not parse: line {err.lineno}: {err.msg}") from None


def unified_diff(original: str, patched: str, name: str = "train.py") -> str:
    """The patch as a unified diff, '' when nothing changed."""
    lines = difflib.unified_diff(
        original.splitlines(keepends=True), patched.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    return "".join(lines)


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def load_module(source: str, filename: str) -> types.ModuleType:
    """Execute a script's text as a fresh module named after its hash (so its classes pickle by reference)."""
    name = f"darkfab_script_{source_hash(source)[:16]}"
    existing = sys.modules.get(name)
    if existing is not None and getattr(existing, "__darkfab_source__", None) == source:
        return existing
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__darkfab_source__ = source  # type: ignore[attr-defined]
    sys.modules[name] = module
    try:
        exec(compile(source, filename, "exec"), module.__dict__)  # noqa: S102 - running the user's script is the point
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


class ScriptEstimator:
    """The fitted object a script returned, with the exact source that made it.

    Pickles as (source, diff, inner pickle); unpickling re-executes the source first, and only in a process
    that trusts generated code.
    """

    def __init__(self, inner: Any, *, source: str, diff: str, task: TaskKind) -> None:
        self.inner = inner
        self.source = source
        self.diff = diff
        self.task = task

    @property
    def source_sha256(self) -> str:
        return source_hash(self.source)

    def _method(self, name: str) -> Any:
        fn = getattr(self.inner, name, None)
        if fn is None and callable(self.inner):
            fn = self.inner
        if fn is None:
            raise ScriptError(f"the script's model has no {name}; fix: return a model with {name}")
        return fn

    @property
    def classes_(self) -> np.ndarray:
        """The classes the script's model saw (so its columns line up with the task's); AttributeError if
        it does not say, and then its columns are taken as the task's classes in order."""
        return np.asarray(self.inner.classes_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._method("predict_proba")(X), dtype=float)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._method("predict")(X))

    def __getstate__(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "diff": self.diff,
            "task": self.task,
            "inner": pickle.dumps(self.inner, protocol=5),
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not code_trusted():
            raise UntrustedCodeError(
                "this model was made by a training script and loading it runs that code; fix: load it where "
                f"generated code may run (darkfab's sandboxed workers), or opt in with {TRUST_ENV}=1 / "
                "darkfab.train.trust_script_code() / `--trust-code`"
            )
        self.source, self.diff, self.task = state["source"], state["diff"], state["task"]
        load_module(self.source, f"<darkfab script {source_hash(self.source)[:12]}>")
        self.inner = pickle.loads(state["inner"])  # noqa: S301 - trusted above


def scratch_dir() -> str:
    """Where a trial writes its files: the sandbox's scratch folder, else a fresh temporary folder."""
    scratch = os.environ.get("DARKFAB_SCRATCH")
    if scratch:
        return scratch
    return tempfile.mkdtemp(prefix="darkfab-script-")


class ScriptTrainer(Trainer):
    """Runs ``train(X, y, X_valid, params, report)`` from a user's script, patched by the trial's ``CodePatch``."""

    def __init__(self, name: str, script: str, *, flavour: Flavour = "linear") -> None:
        self.name = name
        self.script = script
        self.flavour = flavour

    def read(self) -> str:
        try:
            return Path(self.script).read_text(encoding="utf-8")
        except OSError as err:
            raise ScriptError(
                f"trainer {self.name!r}: cannot read script {self.script!r} ({err.strerror}); fix: check "
                "`trainers[].script`, a path relative to the factory file"
            ) from None

    def patched(self, code: CodePatch | None) -> tuple[str, str, str]:
        """(original, patched, diff) for this code edit (None: the script as written)."""
        original = self.read()
        editable_blocks(original)
        patch = code.edit_list() if code is not None else []
        patched = apply_edits(original, patch) if patch else original
        if not patch:
            check_parses(patched, self.script)
        return original, patched, unified_diff(original, patched, Path(self.script).name)

    def fit(self, ctx: FitContext, params: dict[str, Any]) -> Any:
        _, source, diff = self.patched(ctx.patch)
        path = os.path.join(scratch_dir(), f"train_{source_hash(source)[:12]}.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(source)
        module = load_module(source, path)
        train = getattr(module, "train", None)
        if not callable(train):
            raise ScriptError(
                f"trainer {self.name!r}: the script defines no `train(X, y, X_valid, params, report)`; fix: add it"
            )
        user = {k: v for k, v in params.items() if not k.startswith("_")}
        for key, value in (("seed", ctx.seed), ("task", ctx.task), ("n_classes", ctx.n_classes)):
            user.setdefault(key, value)
        user.setdefault("threads", ctx.threads)
        inner = train(ctx.X, ctx.y, ctx.X_valid, user, ctx.report)
        if inner is None:
            raise ScriptError(f"trainer {self.name!r}: `train` returned None; fix: return the fitted model")
        return ScriptEstimator(inner, source=source, diff=diff, task=ctx.task)
