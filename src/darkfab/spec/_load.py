"""Reading a factory file, turning pydantic's errors into ones that name file, field, value, rule and fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from ..errors import SpecError
from ._models import DEFAULT_BUDGET, FactorySpec, parse_duration

_FIXES = {
    "extra_forbidden": "remove it, or check its spelling against `darkfab schema`",
    "missing": "add it",
    "literal_error": "use one of the values listed",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than": "use a smaller value",
    "less_than_equal": "use a smaller value",
    "string_pattern_mismatch": "use letters, digits, '_', '.' and '-' only",
    "too_short": "add at least one entry",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "tagged-union", "constrained-")) or part in ("TrainerSpec",):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: the factory file is not valid ({err.error_count()} problem(s))"]
    for e in err.errors():
        path = _field_path(tuple(e["loc"]))
        rule = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        shown = json.dumps(value, default=str) if not isinstance(value, dict) else "{...}"
        if len(shown) > 80:
            shown = shown[:77] + "..."
        fix = _FIXES.get(e["type"], "correct the value")
        lines.append(f"  - field `{path}`: {rule} (got {shown}); fix: {fix}")
    return "\n".join(lines)


def spec_from_dict(raw: Any, source: str = "<factory>") -> FactorySpec:
    if not isinstance(raw, dict):
        raise SpecError(
            f"{source}: the factory file must be a YAML mapping (name: ..., data: ...), "
            f"got {type(raw).__name__}; fix: start from `darkfab init`"
        )
    try:
        return FactorySpec.model_validate(raw)
    except ValidationError as err:
        raise SpecError(format_validation_error(err, source)) from None


def load_spec(path: str | Path) -> FactorySpec:
    """Read and validate a factory file. Raises SpecError naming the file on any problem."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: no such factory file; fix: check the path, or write one with `darkfab init {p}`")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(
            f"{p}: not valid YAML{where}: {getattr(err, 'problem', err)}; fix: check indentation and quoting there"
        ) from None
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a UTF-8 text file; fix: save it as UTF-8 YAML") from None
    spec = spec_from_dict(raw, str(p))
    return _resolve_paths(spec, p.parent, p)


def _resolve_paths(spec: FactorySpec, base: Path, file: Path | None = None) -> FactorySpec:
    """Relative data and script paths are relative to the factory file, as a user expects."""
    trainers = [
        t.model_copy(update={"script": str((base / t.script).resolve())})
        if t.script is not None and not Path(t.script).is_absolute()
        else t
        for t in spec.trainers
    ]
    for t in trainers:
        if t.script is not None and not Path(t.script).is_file():
            raise SpecError(
                f"{file or base}: field `trainers[{t.name}].script`: no such file {t.script!r}; fix: give "
                "the training script's path, relative to the factory file"
            )
    if trainers != spec.trainers:
        spec = spec.model_copy(update={"trainers": trainers})
    if any(m.folder is None for m in spec.objective.metrics.values()):
        metrics = {
            k: m if m.folder is not None else m.model_copy(update={"folder": str(base.resolve())})
            for k, m in spec.objective.metrics.items()
        }
        spec = spec.model_copy(update={"objective": spec.objective.model_copy(update={"metrics": metrics})})
    src = spec.data.source
    if ":" in src.split("/")[0] or Path(src).is_absolute():
        return spec
    resolved = str((base / src).resolve())
    return spec.model_copy(update={"data": spec.data.model_copy(update={"source": resolved})})


def with_overrides(
    spec: FactorySpec,
    *,
    trials: int | None = None,
    time: str | float | None = None,
    cpu: str | float | None = None,
    workers: int | None = None,
    seed: int | None = None,
) -> FactorySpec:
    """Apply command-line budget flags over the file. Validated as the file is.

    Sections the file leaves out stay unset (so task-aware defaults still apply to them). A file without a
    `budget:` section run with ``--time`` gets that time and no trial cap: the search spends what it is given.
    """
    raw = {k: v for k, v in spec.model_dump(mode="json").items() if k in spec.model_fields_set}
    if "budget" not in raw:
        raw["budget"] = {} if time is not None else dict(DEFAULT_BUDGET)
    raw.setdefault("execution", {})
    raw.setdefault("search", {})
    try:
        if trials is not None:
            raw["budget"]["trials"] = trials
        if time is not None:
            raw["budget"]["time"] = parse_duration(time)
        if cpu is not None:
            raw["budget"]["cpu"] = parse_duration(cpu)
    except ValueError as err:
        raise SpecError(f"--time/--cpu: {err}") from None
    if workers is not None:
        raw["execution"]["workers"] = workers
    if seed is not None:
        raw["search"]["seed"] = seed
    return spec_from_dict(raw, "command-line options")


def json_schema() -> dict[str, Any]:
    schema = FactorySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "darkfab factory file"
    return schema
