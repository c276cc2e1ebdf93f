"""The shape a newcomer can map: small modules, classes and functions, one-way arrows between packages.

Limits (issue 11): no module over 600 lines, no class over 400, no function over 80 (migrations excepted), and
no import of another package's private module. ``KNOWN`` lists what is still over a limit, each with its size
then; it may only shrink: a new offender, or a known one that grew, fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import darkfab

ROOT = Path(darkfab.__file__).parent
MODULE, CLASS, FUNCTION = 600, 400, 80

KNOWN: dict[str, int] = {}


def _offences() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if "migrations" in rel.parts:
            continue
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        lines = text.count("\n")
        if lines > MODULE:
            found[f"module {rel}"] = lines
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                limit = CLASS if isinstance(node, ast.ClassDef) else FUNCTION
                if size > limit:
                    found[f"{'class' if limit == CLASS else 'function'} {rel}:{node.name}"] = size
    return found


def test_modules_classes_and_functions_stay_small() -> None:
    found = _offences()
    new = {k: v for k, v in found.items() if k not in KNOWN}
    grown = {k: (KNOWN[k], v) for k, v in found.items() if k in KNOWN and v > KNOWN[k]}
    assert not new, f"over the limits (module {MODULE}, class {CLASS}, function {FUNCTION} lines): {new}"
    assert not grown, f"known offenders that grew (was, now): {grown}"
    gone = sorted(k for k in KNOWN if k not in found)
    assert not gone, f"no longer over a limit, take them out of KNOWN: {gone}"


def _private_imports(path: Path) -> list[str]:
    rel = path.relative_to(ROOT)
    own = rel.parts[0] if len(rel.parts) > 1 else None
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if node.level == 0:
            if not node.module.startswith("darkfab."):
                continue
            parts = node.module.split(".")[1:]
        else:
            base = list(rel.parts[:-1])
            parts = base[: len(base) - (node.level - 1)] + node.module.split(".")
        if parts and parts[0] != own and any(p.startswith("_") for p in parts[1:]):
            out.append(f"{rel}:{node.lineno} imports {node.module}")
    return out


def test_no_package_imports_another_packages_private_module() -> None:
    found = [hit for path in sorted(ROOT.rglob("*.py")) for hit in _private_imports(path)]
    assert not found, found
