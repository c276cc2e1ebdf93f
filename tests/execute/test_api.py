"""The public surface of darkfab.execute, and the records' own checks."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import darkfab
import darkfab.execute as execute
from darkfab.errors import SpecError
from darkfab.execute import Executor, Limits


def test_all_is_sorted_and_complete() -> None:
    assert execute.__all__ == sorted(execute.__all__)
    public = {
        name
        for name, value in vars(execute).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert public == set(execute.__all__)


def test_every_executor_implements_the_abc() -> None:
    for name, load in execute.EXECUTORS.items():
        cls = load()
        assert issubclass(cls, Executor) and not inspect.isabstract(cls), name


@pytest.mark.parametrize(
    ("field", "value"),
    [("timeout_s", 0), ("timeout_s", -1.0), ("memory_mb", 0), ("retries", -1)],
)
def test_limits_refuse_impossible_values(field: str, value: float) -> None:
    with pytest.raises(SpecError, match=field):
        Limits(**{field: value})  # type: ignore[arg-type]


def test_limits_defaults_and_no_memory_limit() -> None:
    assert Limits(memory_mb=None).memory_mb is None
    assert Limits().retries == 1


def _outside(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a folder outside this repository, with only darkfab's own folder on the path."""
    env = {**os.environ, "PYTHONPATH": str(Path(darkfab.__file__).resolve().parents[1])}
    return subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_the_installed_executor_contract_imports_nothing_from_this_repositorys_tests(tmp_path: Path) -> None:
    probe = (
        "import sys, darkfab.testing.executor_contract, darkfab.testing.faulty; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tests'))"
    )
    run = _outside(tmp_path, "-c", probe)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_executor_contract_runs_outside_this_repository(tmp_path: Path) -> None:
    (tmp_path / "test_outside.py").write_text(
        textwrap.dedent(
            """\
            import pytest

            from darkfab.execute import LocalExecutor
            from darkfab.testing.executor_contract import ExecutorContract


            class TestOutside(ExecutorContract):
                @pytest.fixture
                def executor_factory(self):
                    return LocalExecutor
            """
        )
    )
    run = _outside(
        tmp_path, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "real_trial or segfault", "test_outside.py"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout, run.stdout
