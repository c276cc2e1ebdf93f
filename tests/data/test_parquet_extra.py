"""Parquet is the `parquet` extra: without pyarrow, a Parquet source is a clear error naming the file and the fix,
and a snapshot darkfab writes for itself (a retraining campaign's rows) falls back to CSV.

The missing module is simulated with the real import machinery: a child Python whose ``sys.meta_path`` refuses
``pyarrow`` (and pandas' other engine, ``fastparquet``) before anything imports them, installed through a
``sitecustomize`` so the ``darkfab`` command itself runs without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]

BLOCKER = textwrap.dedent(
    """
    import sys

    class _NoParquetEngine:
        blocked = ("pyarrow", "fastparquet")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _NoParquetEngine())
    """
)

FACTORY = """\
name: parquet_source
data: {source: rows.parquet, target: label}
trainers:
  - name: logistic_regression
budget: {trials: 2}
"""


@pytest.fixture
def without_pyarrow(tmp_path: Path) -> dict[str, str]:
    """The environment of a child Python that cannot import pyarrow; a Parquet file written while it still can."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    frame = pd.DataFrame({"x": [0.1, 0.4, 0.35, 0.8] * 10, "label": [0, 1, 0, 1] * 10})
    frame.to_parquet(tmp_path / "rows.parquet", index=False)
    frame.to_csv(tmp_path / "rows.csv", index=False)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.pop("DARKFAB_STORE", None)
    env["COLUMNS"] = "200"
    return env


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_reading_parquet_without_pyarrow_names_the_file_the_extra_and_the_fix(without_pyarrow, tmp_path: Path):
    code = textwrap.dedent(
        """
        import importlib.util, sys
        from darkfab.data import read_source
        from darkfab.errors import DataError

        try:
            import pyarrow  # noqa: F401
        except ImportError:
            pass
        else:
            sys.exit("the blocker did not hold: pyarrow imported")
        print("csv rows", len(read_source("rows.csv")))  # CSV needs no extra
        try:
            read_source("rows.parquet")
        except DataError as err:
            print("DataError:", err)
        """
    )
    proc = run(without_pyarrow, tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "csv rows 40" in proc.stdout
    message = proc.stdout.split("DataError: ", 1)[1]
    assert message.startswith("rows.parquet: reading a Parquet file needs pyarrow"), message
    assert "pip install 'darkfab[parquet]'" in message


def test_the_command_says_it_in_one_line_without_a_traceback(without_pyarrow, tmp_path: Path) -> None:
    (tmp_path / "factory.yaml").write_text(FACTORY)
    proc = run(without_pyarrow, tmp_path, "-m", "darkfab", "run", "factory.yaml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = " ".join((proc.stdout + proc.stderr).split())  # rich may wrap the line
    assert "rows.parquet" in out and "needs pyarrow" in out and "pip install 'darkfab[parquet]'" in out, out
    assert "Traceback" not in proc.stderr + proc.stdout


def snapshot_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": [0.1, 0.4, 1 / 3, 2.5e-8],
            "n": [1, 2, 3, 4],
            "colour": ["red", "green", "blue", "red"],
            "label": [0, 1, 0, 1],
        }
    )


def test_a_snapshot_is_parquet_when_pyarrow_is_there_and_reads_back_the_same(tmp_path: Path) -> None:
    from darkfab.data import read_table, write_snapshot

    path = write_snapshot(snapshot_frame(), tmp_path / "factory-campaign-2")
    assert path == tmp_path / "factory-campaign-2.parquet"
    pd.testing.assert_frame_equal(read_table(path), snapshot_frame())


def test_a_snapshot_is_csv_without_pyarrow_and_reads_back_the_same(without_pyarrow, tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import pandas as pd
        from darkfab.data import read_table, write_snapshot

        expected = pd.DataFrame(
            {"x": [0.1, 0.4, 1 / 3, 2.5e-8], "n": [1, 2, 3, 4], "colour": ["red", "green", "blue", "red"],
             "label": [0, 1, 0, 1]}
        )
        path = write_snapshot(expected, "factory-campaign-2")
        print("wrote", path)
        pd.testing.assert_frame_equal(read_table(path), expected)
        print("same rows")
        """
    )
    proc = run(without_pyarrow, tmp_path, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert "wrote factory-campaign-2.csv" in proc.stdout and "same rows" in proc.stdout
    assert not (tmp_path / "factory-campaign-2.parquet").exists()
