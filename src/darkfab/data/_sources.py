"""Reading rows from a CSV or Parquet file, a SQL query, or a scikit-learn bundled data set.

Parquet needs pyarrow, which is the ``parquet`` extra (``pip install 'darkfab[parquet]'``), not a core dependency:
without it, reading a Parquet source is a :class:`~darkfab.errors.DataError` that names the file and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from ._rows import refuse_duplicates

SKLEARN_SETS = ("digits", "breast_cancer", "wine", "iris", "diabetes")


def is_database_url(source: str) -> bool:
    head = source.split("://", 1)[0]
    return "://" in source and not Path(source).exists() and head.replace("+", "").isalnum()


def read_source(source: str, query: str | None = None) -> pd.DataFrame:
    """Read the rows a factory file's ``data.source`` names. Raises DataError naming the source."""
    if source.startswith("sklearn:"):
        return _read_sklearn(source.removeprefix("sklearn:"))
    if is_database_url(source):
        return _read_sql(source, query)
    return read_table(source)


def _read_sklearn(name: str) -> pd.DataFrame:
    if name not in SKLEARN_SETS:
        raise DataError(
            f"data.source: unknown scikit-learn data set {name!r}; fix: use one of "
            + ", ".join(f"sklearn:{n}" for n in SKLEARN_SETS)
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    return frame


def _read_sql(url: str, query: str | None) -> pd.DataFrame:
    if not query:
        raise DataError(
            f"data.source is a database URL ({_redact(url)}) but data.query is empty; "
            "fix: add `query: SELECT ... FROM ...`"
        )
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            frame = pd.read_sql_query(sa.text(query), conn)
        engine.dispose()
    except Exception as err:  # the driver's own error text says what failed
        raise DataError(
            f"data.query on {_redact(url)} failed: {str(err).splitlines()[0]}; "
            "fix: check the URL, the driver and the query"
        ) from None
    return frame


def _redact(url: str) -> str:
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<database URL>"


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a DataFrame, with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise DataError(
            f"{p}: no such data file; fix: check the path (relative paths are relative to the factory file)"
        )
    suffix = p.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt", ".tsv"):
        raise DataError(f"{p}: unknown file type {suffix!r}; fix: use .csv, .tsv or .parquet")
    sep = "\t" if suffix == ".tsv" else ","
    try:
        if suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(p)
            header = [str(c) for c in frame.columns]
        else:
            frame = pd.read_csv(p, sep=sep)
            header = _header(p, sep)  # pandas renames a repeated name ('a' -> 'a.1') without a word
    except ImportError as err:  # pandas found no Parquet engine: pyarrow is an extra, not in the core install
        raise DataError(
            f"{p}: reading a Parquet file needs pyarrow, which the core install of darkfab leaves out "
            f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
            "fix: pip install 'darkfab[parquet]', or give the data as CSV"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{p}: the file is empty; fix: give a file with a header row and data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as err:
        raise DataError(f"{p}: cannot be read as {suffix.lstrip('.')}: {str(err).splitlines()[0]}") from None
    refuse_duplicates(header, str(p))
    return frame


def write_snapshot(frame: pd.DataFrame, stem: str | Path) -> Path:
    """Write rows that darkfab itself reads back later as a data source (a retraining campaign's data).

    Parquet (``stem.parquet``) when pandas has a Parquet engine (pyarrow, the ``parquet`` extra), so the column
    types come back exactly; CSV (``stem.csv``) otherwise, which :func:`read_table` reads back as it reads a CSV
    source (in an install without pyarrow the factory's own source is CSV, SQL or scikit-learn rows anyway).

    Returns:
        The path written.
    """
    stem = Path(stem)
    path = stem.with_name(stem.name + ".parquet")
    try:
        frame.to_parquet(path, index=False)
        return path
    except ImportError:  # no Parquet engine in this install
        path.unlink(missing_ok=True)
    path = stem.with_name(stem.name + ".csv")
    frame.to_csv(path, index=False)
    return path


def _header(p: Path, sep: str) -> list[str]:
    import csv

    with p.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        return next(csv.reader(fh, delimiter=sep), [])
