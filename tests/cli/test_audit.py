"""Attacks on the factory's records and inputs, through the `darkfab` command, as an attacker would try them."""

from __future__ import annotations

import pytest

ESTIMATOR_FACTORY = """\
name: est
data: {{source: "sklearn:breast_cancer", target: target}}
trainers:
  - name: mine
    estimator: "{path}"
budget: {{trials: 2}}
"""


@pytest.mark.parametrize(
    "path",
    ["os:system", "builtins:eval", "collections:OrderedDict"],  # a builtin, a function-like, a class without fit
)
def test_estimator_import_path_must_name_an_estimator_class(cli, tmp_path, path):
    (tmp_path / "factory.yaml").write_text(ESTIMATOR_FACTORY.format(path=path))
    proc = cli("run", "factory.yaml", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = " ".join(proc.stderr.split())
    assert "trainers[mine].estimator" in text  # the field
    assert repr(path) in text  # the value
    assert "class with fit and predict" in text  # the rule
    assert "fix:" in text
    assert not (tmp_path / ".darkfab").exists() or not any((tmp_path / ".darkfab" / "artifacts").glob("*"))
