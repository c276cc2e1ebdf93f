"""Ray is an optional extra: darkfab imports it only for the Ray executor, and says how to install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from darkfab.errors import SpecError
from darkfab.execute import RayExecutor, make_executor


def test_importing_the_executors_does_not_import_ray() -> None:
    code = "import sys, darkfab.execute; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_without_ray_the_ray_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(SpecError, match=r"needs Ray.*pip install 'darkfab\[ray\]'"):
        make_executor("ray")
    with pytest.raises(SpecError, match=r"pip install 'darkfab\[ray\]'"):
        RayExecutor(address="auto")
