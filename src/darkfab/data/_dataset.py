"""A loaded, checked and split data set: the rows every part of a campaign sees."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..spec import FactorySpec, TaskKind
from ._leaks import Leak, find_leaks
from ._rows import refuse_duplicates, refuse_missing
from ._sources import read_source

MIN_ROWS = 20


@dataclass(frozen=True)
class Dataset:
    """Features and labels of the three splits. Labels of ``valid`` and ``test`` stay in this process."""

    task: TaskKind
    target: str
    features: tuple[str, ...]
    feature_types: dict[str, str]  # column -> "numeric" | "categorical"
    classes: tuple[Any, ...]  # original class labels, sorted; () for regression
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_valid: pd.DataFrame
    y_valid: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    groups_valid: np.ndarray | None
    groups_test: np.ndarray | None
    fingerprint: str
    notes: tuple[str, ...] = field(default=())
    leaks: tuple[Leak, ...] = field(default=())  # found on the training rows; dropped unless kept
    split_seed: int = 0  # the seed the rows were split with (the sealed set is fingerprint + this seed)
    task_reason: str = ""  # why the task is what it is: the file said so, or what the target looked like

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_rows(self) -> int:
        return len(self.X_train) + len(self.X_valid) + len(self.X_test)

    def baseline_predictions(self, n: int) -> np.ndarray:
        """What a model that ignores the features predicts: the class shares, or the mean, of training."""
        if self.task == "classification":
            prior = np.bincount(self.y_train.astype(int), minlength=self.n_classes) / len(self.y_train)
            return np.tile(prior, (n, 1))
        return np.full(n, float(np.mean(self.y_train)))

    def decode(self, encoded: np.ndarray) -> np.ndarray:
        if self.task == "regression":
            return encoded
        return np.asarray(self.classes, dtype=object)[encoded.astype(int)]


def _suggest(name: str, columns: list[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    if close:
        return f"did you mean {close[0]!r}?"
    shown = ", ".join(map(repr, columns[:12])) + (" ..." if len(columns) > 12 else "")
    return f"the columns are {shown}"


def _check_column(frame: pd.DataFrame, name: str | None, field_path: str) -> None:
    if name is not None and name not in frame.columns:
        cols = [str(c) for c in frame.columns]
        raise DataError(f"{field_path}: no column {name!r} in the data; fix: {_suggest(name, cols)}")


FEW_CLASSES = 20
"""An integer target with at most this many distinct values (and fewer than half as many as rows) is a class."""
MIN_CLASS_ROWS = 10
"""Past FEW_CLASSES, an integer target is a class code only if every value has at least this many rows."""
MANY_CLASSES_SHARE = 0.02
"""Past FEW_CLASSES, an integer target is a class code only if its distinct values are at most this share of rows."""


def infer_task(y: pd.Series) -> TaskKind:
    """Classification or regression, as :func:`infer_task_reason` decides (the reason left out)."""
    return infer_task_reason(y)[0]


def infer_task_reason(y: pd.Series) -> tuple[TaskKind, str]:
    """The task a target column implies, and why, in words a person reads in the run summary.

    Text, categories and booleans are classes. A numeric target with fractions is a quantity. An integer
    target is a class when it has few distinct values (at most FEW_CLASSES, fewer than half as many as
    rows); with more, it is a class code only when every value is well represented (at least MIN_CLASS_ROWS
    rows each, and no more values than MANY_CLASSES_SHARE of the rows). Otherwise it reads as a count or an
    amount (doctor visits, ages, prices in whole units), where values near each other mean nearly the same
    thing and rare values have too few rows to be learnt as classes of their own: regression. ``task:`` in
    the factory file overrides the guess either way.
    """
    fix = "set `task:` in the factory file to choose otherwise"
    if y.dtype == object or isinstance(y.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(y):
        return "classification", f"inferred: the target holds text labels; {fix}"
    if pd.api.types.is_bool_dtype(y):
        return "classification", f"inferred: the target is true/false; {fix}"
    values = y.dropna()
    if not (pd.api.types.is_integer_dtype(y) or (values == np.round(values)).all()):
        return "regression", f"inferred: the target is numeric with fractional values; {fix}"
    counts = values.value_counts()
    k, n = len(counts), len(values)
    if k <= FEW_CLASSES and k < 0.5 * n:
        return (
            "classification",
            f"inferred: the integer target has {k} distinct values in {n} rows, few enough to be classes; {fix}",
        )
    rarest = counts.idxmin()
    if k <= MANY_CLASSES_SHARE * n and counts.min() >= MIN_CLASS_ROWS:
        return "classification", (
            f"inferred: the integer target has {k} distinct values, each held by at least {MIN_CLASS_ROWS} of "
            f"{n} rows, so they read as class codes; {fix}"
        )
    rarest, lo, hi = (v.item() if isinstance(v, np.generic) else v for v in (rarest, values.min(), values.max()))
    why = (
        f"value {rarest:g} occurs in {counts.min()} row(s)"
        if counts.min() < MIN_CLASS_ROWS
        else f"more than {MANY_CLASSES_SHARE:.0%} of the rows"
    )
    return "regression", (
        f"inferred: the integer target has {k} distinct values from {lo:g} to {hi:g} in {n} rows ({why}), "
        f"so it reads as a count or amount, not classes; {fix}"
    )


def feature_type(col: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(col):
        return "numeric"
    return "categorical"


def fingerprint(frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _checked_target(frame: pd.DataFrame, spec: FactorySpec) -> str:
    """The target's column name, after checking the declared columns, the row count and the labels."""
    d = spec.data
    target = d.target or ("target" if d.source.startswith("sklearn:") else None)
    if target is None:
        raise DataError("data.target is not set; fix: name the column to predict, e.g. `target: label`")
    if len(frame) == 0:
        raise DataError(f"{d.source}: the data has no rows; fix: point data.source at a non-empty table")
    _check_column(frame, target, "data.target")
    _check_column(frame, d.group, "data.group")
    _check_column(frame, d.time, "data.time")
    for i, col in enumerate(d.exclude):
        _check_column(frame, col, f"data.exclude[{i}]")
    for i, col in enumerate(d.keep_leaky):
        _check_column(frame, col, f"data.keep_leaky[{i}]")
    if len(frame) < MIN_ROWS:
        raise DataError(
            f"{d.source}: {len(frame)} rows is too few to split into training, validation "
            f"and sealed test; fix: give at least {MIN_ROWS} rows"
        )
    y_raw = frame[target]
    missing = int(y_raw.isna().sum())
    if missing:
        rows = ", ".join(str(i) for i in np.flatnonzero(y_raw.isna().to_numpy())[:5])
        raise DataError(
            f"data.target: column {target!r} has {missing} missing value(s) (rows {rows}...); "
            "fix: drop or fill those rows; a model cannot learn from rows without a label"
        )
    return target


def _encoded(y_raw: pd.Series, task: str, target: str) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The target as numbers (floats for regression, class codes for classification) and the classes."""
    if task == "regression":
        if not pd.api.types.is_numeric_dtype(y_raw) or pd.api.types.is_bool_dtype(y_raw):
            example = next((v for v in y_raw if not _is_number(v)), y_raw.iloc[0])
            raise DataError(
                f"data.target: task is regression but column {target!r} holds text "
                f"(e.g. {example!r}); fix: set `task: classification`, or give a numeric target"
            )
        y_all = y_raw.to_numpy(dtype=float)
        classes: tuple[Any, ...] = ()
    else:
        labels = y_raw.astype(str) if y_raw.dtype == object else y_raw
        uniques = pd.unique(labels)
        if len(uniques) < 2:
            raise DataError(
                f"data.target: column {target!r} has a single class ({uniques[0]!r}); "
                "fix: classification needs at least two classes in the data"
            )
        classes = tuple(sorted(uniques.tolist(), key=lambda v: (str(type(v)), v)))
        index = {c: i for i, c in enumerate(classes)}
        y_all = np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))
    return y_all, classes


def _without_leaks(
    frame: pd.DataFrame, features: list[str], y_all: np.ndarray, train_idx: np.ndarray, task: Any, keep: Any
) -> tuple[tuple[Leak, ...], list[str]]:
    """The columns that give the target away on the training rows, and the features left once those not kept
    on purpose (``data.keep_leaky``) are dropped."""
    leaks = tuple(
        Leak(leak.feature, leak.rule, leak.figure, leak.reason, kept=leak.feature in keep)
        for leak in find_leaks(frame[features].iloc[train_idx], y_all[train_idx], task=task)
    )
    dropped = {leak.feature for leak in leaks if not leak.kept}
    if dropped and dropped == set(features):
        shown = ", ".join(map(repr, sorted(dropped)))
        raise DataError(
            f"every feature gives the target away on the training rows ({shown}), so none is left to learn "
            f"from; fix: give honest features, or keep one on purpose with `data.keep_leaky: [{sorted(dropped)[0]}]`"
        )
    features = [c for c in features if c not in dropped]
    return leaks, features


def load_dataset(spec: FactorySpec, *, split_seed: int | None = None) -> Dataset:
    """Read, check and split the data a factory declares. Raises DataError naming the problem and the fix.

    Columns that give the target away on the training rows are dropped (``data.keep_leaky`` keeps them);
    ``split_seed`` replaces ``data.split.seed`` (a sealed set worn out by the gate is split afresh).
    """
    d = spec.data
    frame = read_source(d.source, d.query)
    refuse_duplicates(frame.columns, d.source)  # a SQL query may select one name twice
    frame.columns = [str(c) for c in frame.columns]
    target = _checked_target(frame, spec)
    y_raw = frame[target]
    task, task_reason = (spec.task, "set by `task:` in the factory file") if spec.task else infer_task_reason(y_raw)
    notes: list[str] = []
    y_all, classes = _encoded(y_raw, task, target)
    drop = {target, *(d.exclude)}
    if d.time:
        drop.add(d.time)
    features = [c for c in frame.columns if c not in drop]
    empty = [c for c in features if frame[c].isna().all()]
    if empty:
        notes.append(f"dropped columns with no values: {', '.join(empty)}")
        features = [c for c in features if c not in empty]
    if not features:
        raise DataError(
            "the data has no feature columns left after removing the target, time and excluded "
            "columns; fix: keep at least one feature"
        )
    seed = spec.data.split.seed if split_seed is None else split_seed
    train_idx, valid_idx, test_idx = _split(frame, y_all, task, spec, seed)
    leaks, features = _without_leaks(frame, features, y_all, train_idx, task, d.keep_leaky)
    X = frame[features]
    ftypes = {c: feature_type(X[c]) for c in features}
    groups = frame[d.group].to_numpy() if d.group else None
    return Dataset(
        task=task,
        target=target,
        features=tuple(features),
        feature_types=ftypes,
        classes=classes,
        X_train=X.iloc[train_idx].reset_index(drop=True),
        y_train=y_all[train_idx],
        X_valid=X.iloc[valid_idx].reset_index(drop=True),
        y_valid=y_all[valid_idx],
        X_test=X.iloc[test_idx].reset_index(drop=True),
        y_test=y_all[test_idx],
        groups_valid=None if groups is None else groups[valid_idx],
        groups_test=None if groups is None else groups[test_idx],
        fingerprint=fingerprint(frame),
        notes=tuple(notes),
        leaks=leaks,
        split_seed=seed,
        task_reason=task_reason,
    )


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _split(
    frame: pd.DataFrame, y: np.ndarray, task: TaskKind, spec: FactorySpec, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = spec.data.split
    n = len(frame)
    n_test = max(1, int(round(s.test * n)))
    n_valid = max(1, int(round(s.valid * n)))
    if spec.data.time:
        order = np.argsort(frame[spec.data.time].to_numpy(), kind="stable")
        return order[: n - n_test - n_valid], order[n - n_test - n_valid : n - n_test], order[n - n_test :]
    rng = np.random.default_rng(seed)
    if task == "classification" and np.bincount(y).min() >= 3:
        return _stratified(y, n_valid, n_test, rng)
    perm = rng.permutation(n)
    return perm[n_test + n_valid :], perm[n_test : n_test + n_valid], perm[:n_test]


def _stratified(
    y: np.ndarray, n_valid: int, n_test: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class keeps its share in every split (largest-remainder rounding)."""
    n = len(y)
    parts: list[list[np.ndarray]] = [[], [], []]
    for cls in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == cls))
        t = max(1, int(round(len(idx) * n_test / n)))
        v = max(1, int(round(len(idx) * n_valid / n)))
        parts[2].append(idx[:t])
        parts[1].append(idx[t : t + v])
        parts[0].append(idx[t + v :])
    return tuple(rng.permutation(np.concatenate(p)) for p in parts)  # type: ignore[return-value]


def check_features(frame: pd.DataFrame, features: tuple[str, ...], where: str) -> pd.DataFrame:
    """Columns ``features`` of ``frame`` in order; a DataError naming any that are missing."""
    frame = frame.rename(columns=str)
    refuse_missing(frame, features, where)
    return frame[list(features)]
