"""A careless user (or a hostile file) against `darkfab predict` and `darkfab run`: every bad row is a clear
error naming the row, column and value, exit 2, never a traceback and never a silent wrong answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ..helpers.factories import small_factory
from .conftest import CLI

FACTORY = small_factory("hostile", source="rows.csv", target="kind", budget="{trials: 2}", latency_rows=2)
HEADER = "x,colour,size"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "colour": rng.choice(["red", "green"], size=n), "size": rng.normal(size=n)})
    df["kind"] = np.where(x + (df["colour"] == "red") > 0, "good", "bad")
    df.to_csv(cwd / "rows.csv", index=False)
    (cwd / "factory.yaml").write_text(FACTORY)
    c = CLI(cwd)
    c("run", "factory.yaml")
    return c, cwd


def _predict(trained, body: str, *extra: str, out: str = "out.csv"):
    cli, cwd = trained
    (cwd / "in.csv").write_text(body)
    (cwd / out).unlink(missing_ok=True)
    proc = cli("predict", "in.csv", "-o", out, *extra, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, cwd / out


def test_good_rows_still_predict(trained):
    proc, out = _predict(trained, f"{HEADER}\n0.1,red,0.2\n-1.5,green,\n")
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 2


def test_text_in_a_numeric_column_names_row_column_and_value(trained):
    proc, out = _predict(trained, f"{HEADER}\n0.1,red,0.2\n0.3,green,0.4\nabc,green,0.3\n")
    assert proc.returncode == 2, proc.stderr
    assert "row 3" in proc.stderr and "'x'" in proc.stderr and "'abc'" in proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(("value", "shown"), [("1e300", "1e+300"), ("-1e300", "-1e+300"), ("inf", "inf")])
def test_a_value_no_model_can_hold_is_refused(trained, value, shown):
    proc, out = _predict(trained, f"{HEADER}\n0.1,red,0.2\n0.5,green,{value}\n")
    assert proc.returncode == 2, proc.stderr
    assert "row 2" in proc.stderr and "'size'" in proc.stderr and shown in proc.stderr
    assert not out.exists()


@pytest.mark.slow
def test_an_extra_column_is_refused_unless_ignore_extra(trained):
    body = f"{HEADER},note\n0.1,red,0.2,hello\n"
    proc, out = _predict(trained, body)
    assert proc.returncode == 2 and "'note'" in proc.stderr and "--ignore-extra" in proc.stderr
    assert not out.exists()
    proc, out = _predict(trained, body, "--ignore-extra")
    assert proc.returncode == 0, proc.stderr
    assert len(pd.read_csv(out)) == 1
    # the target column is the model's own: a labelled file scores without a flag
    proc, out = _predict(trained, f"{HEADER},kind\n0.1,red,0.2,good\n")
    assert proc.returncode == 0, proc.stderr


def test_duplicate_column_names_are_refused_at_prediction(trained):
    proc, out = _predict(trained, "x,colour,size,x\n0.1,red,0.2,5\n")
    assert proc.returncode == 2 and "duplicate" in proc.stderr and "'x'" in proc.stderr
    assert not out.exists()


def test_duplicate_column_names_are_refused_at_training(cli, tmp_path):
    rows = "\n".join(f"{i},{i % 3},{i * 2},{i % 2}" for i in range(40))
    (tmp_path / "dup.csv").write_text("a,b,a,kind\n" + rows + "\n")
    (tmp_path / "factory.yaml").write_text(FACTORY.replace("rows.csv", "dup.csv"))
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode == 2 and "duplicate" in proc.stderr and "'a'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_version_too_large_for_the_store(trained):
    proc, out = _predict(trained, f"{HEADER}\n0.1,red,0.2\n", "--version", "99999999999999999999")
    assert proc.returncode == 2 and "99999999999999999999" in proc.stderr, proc.stderr
    assert not out.exists()


def test_output_into_a_missing_directory(trained):
    proc, _ = _predict(trained, f"{HEADER}\n0.1,red,0.2\n", out="no/such/dir/out.csv")
    assert proc.returncode == 2 and "no/such/dir" in proc.stderr, proc.stderr
    cli, cwd = trained
    absolute = cli("predict", "in.csv", "-o", "/no/such/dir/out.csv", check=False)
    assert absolute.returncode == 2 and "/no/such/dir" in absolute.stderr and "Traceback" not in absolute.stderr


def test_debug_shows_the_traceback(trained):
    cli, cwd = trained
    (cwd / "in.csv").write_text(f"{HEADER}\nabc,red,0.2\n")
    for args in (("--debug", "predict", "in.csv", "-o", "o.csv"), ("predict", "in.csv", "-o", "o.csv", "--debug")):
        proc = cli(*args, check=False)
        assert proc.returncode == 2 and "Traceback" in proc.stderr and "'abc'" in proc.stderr, proc.stderr


def test_an_unexpected_error_is_one_line_and_a_hint(trained):
    cli, cwd = trained
    # a directory where the predictions file should go: the write fails in the operating system
    (cwd / "adir.csv").mkdir(exist_ok=True)
    (cwd / "in.csv").write_text(f"{HEADER}\n0.1,red,0.2\n")
    proc = cli("predict", "in.csv", "-o", "adir.csv", check=False)
    assert proc.returncode == 2 and "adir.csv" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
