"""Checking the rows a model is asked to score, before it runs: the columns, then every value.

A value the model cannot use is the caller's error (a :class:`DataError` naming the row, the column and the
value), never a prediction computed from garbage and never a crash inside the model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ..errors import DataError

# The largest magnitude every trainer can hold: several (LightGBM, XGBoost) work in float32.
LARGEST = float(np.finfo(np.float32).max)


def duplicate_columns(columns: Iterable[object]) -> list[str]:
    """Names that occur more than once, in order of their first repeat."""
    seen: set[str] = set()
    dupes: list[str] = []
    for c in map(str, columns):
        if c in seen and c not in dupes:
            dupes.append(c)
        seen.add(c)
    return dupes


def refuse_missing(frame: pd.DataFrame, features: Iterable[str], where: str) -> None:
    """A DataError naming the ``features`` that ``frame`` (its columns already text) lacks, if any."""
    missing = [c for c in features if c not in frame.columns]
    if missing:
        shown = ", ".join(map(repr, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise DataError(
            f"{where}: missing feature column(s) {shown}; fix: give the same columns as the "
            "training data (the target may be left out)"
        )


def refuse_duplicates(columns: Iterable[object], where: str) -> None:
    dupes = duplicate_columns(columns)
    if dupes:
        raise DataError(
            f"{where}: duplicate column name(s) {', '.join(map(repr, dupes))}; a row cannot say which one is "
            "meant; fix: rename or drop the repeated columns"
        )


def _shown(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_rows(
    frame: pd.DataFrame,
    features: tuple[str, ...],
    feature_types: Mapping[str, str],
    where: str,
    *,
    allowed: Iterable[str] = (),
    ignore_extra: bool = False,
) -> pd.DataFrame:
    """The model's ``features`` of ``frame`` in order, every numeric value checked.

    Args:
        frame: the rows as read (a CSV's columns may be text where a number was expected).
        features: the model's feature columns, in its order.
        feature_types: ``numeric`` or ``categorical`` per feature (absent means numeric).
        where: the file or source, named in errors.
        allowed: other columns that may be present and are dropped without a word (e.g. the target).
        ignore_extra: drop any other column instead of refusing it.

    Raises:
        DataError: a duplicate, missing or unknown column; a numeric value that is text, infinite or beyond
            what every trainer can hold, naming the row (1 = the first data row), the column and the value.
    """
    refuse_duplicates(frame.columns, where)
    frame = frame.rename(columns=str)
    refuse_missing(frame, features, where)
    known = set(features) | set(allowed)
    extra = [c for c in frame.columns if c not in known]
    if extra and not ignore_extra:
        shown = ", ".join(map(repr, extra[:10])) + (" ..." if len(extra) > 10 else "")
        raise DataError(
            f"{where}: column(s) {shown} are not features of the model (it reads {len(features)}: "
            f"{', '.join(map(repr, features[:10]))}{' ...' if len(features) > 10 else ''}); fix: drop them, "
            "or pass --ignore-extra to score without them"
        )
    rows = frame[list(features)].copy()
    for name in features:
        if feature_types.get(name, "numeric") == "numeric":
            rows[name] = _numeric(rows[name], name, where)
    return rows


def _numeric(col: pd.Series, name: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
        return col
    numbers = col if pd.api.types.is_numeric_dtype(col) else pd.to_numeric(col, errors="coerce")
    text = col.notna().to_numpy() & numbers.isna().to_numpy()
    if text.any():
        _refuse(col, text, name, where, "is not a number", "correct it, or leave the cell empty for a missing value")
    values = numbers.to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        huge = ~np.isnan(values) & ~(np.abs(values) <= LARGEST)
    if huge.any():
        _refuse(
            col,
            huge,
            name,
            where,
            f"is infinite or larger than {LARGEST:.3g} in magnitude, which a model cannot hold",
            "correct it, or leave the cell empty for a missing value",
        )
    return numbers


def _refuse(col: pd.Series, bad: np.ndarray, name: str, where: str, rule: str, fix: str) -> None:
    at = np.flatnonzero(bad)
    more = f" (and {len(at) - 1} more row(s))" if len(at) > 1 else ""
    value = col.iloc[int(at[0])]
    raise DataError(
        f"{where}: row {int(at[0]) + 1}, column {name!r}: value {_shown(value)} {rule} (the column is a numeric "
        f"feature of the model){more}; fix: {fix}"
    )
