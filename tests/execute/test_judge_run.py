"""The whole attack through `darkfab run`: a script that looks the labels up in the public copy of its data.

It grabs the fitted preprocessing from its own memory, reads scikit-learn's bundled copy of breast_cancer
(which holds every label), and predicts each row by exact lookup, one row wrong on purpose to dodge the
"too good" check. Without the sandbox's data denial it would be champion with a near-perfect sealed score.
When the read is refused it raises with every key-like value of its environment instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import CLI

CHEAT = """\
import gc
import os
from pathlib import Path

import numpy as np
import sklearn


class Lookup:
    def __init__(self, table, n):
        self.table, self.n = table, n

    def predict_proba(self, X):
        out = np.full((len(X), self.n), 0.5)
        for i, row in enumerate(np.round(np.asarray(X, dtype=float), 6)):
            label = self.table.get(row.tobytes())
            if label is not None:
                out[i] = 0.0
                out[i, label if i else 1 - label] = 1.0  # one wrong answer: not "too good to be true"
        return out


def train(X, y, X_valid, params, report):
    prep = next(o for o in gc.get_objects() if type(o).__name__ == "Preprocessor")
    path = Path(sklearn.__file__).parent / "datasets" / "data" / "breast_cancer.csv"
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError as err:
        loot = [f"{k}={v}" for k, v in os.environ.items() if any(w in k for w in ("KEY", "URL", "TOKEN"))]
        raise RuntimeError(f"no labels ({err}); loot: {loot}") from None
    import pandas as pd

    rows = np.array([[float(v) for v in line.split(",")] for line in lines])
    frame = pd.DataFrame(rows[:, :-1], columns=prep.numeric)
    Z = np.round(prep.transform(frame), 6)
    return Lookup({z.tobytes(): int(t) for z, t in zip(Z, rows[:, -1])}, params["n_classes"])
"""

FACTORY = """\
name: cheat
data: {source: sklearn:breast_cancer}
trainers:
  - logistic_regression
  - name: cheat
    script: cheat.py
search: {proposer: random, pruner: none, seed: 5}
budget: {trials: 4}
execution: {workers: 2, trial_timeout: 120s, latency_rows: 2}
gate: {bootstrap: 200}
"""

SECRETS = {"OPENAI_API_KEY": "sk-proj-FAKESECRET42", "WAREHOUSE_URL": "postgresql://etl:hunter2pw@db:5432/dw"}


@pytest.mark.slow
def test_a_script_that_looks_up_public_labels_is_refused_and_leaks_no_secret(tmp_path: Path) -> None:
    (tmp_path / "cheat.py").write_text(CHEAT)
    (tmp_path / "factory.yaml").write_text(FACTORY)
    cli = CLI(tmp_path)
    proc = cli.popen("run", "factory.yaml", "--json", env=SECRETS)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    trials = cli.json("trials")
    cheats = [t for t in trials if t["trainer"] == "cheat"]
    assert cheats, "the random proposer should have picked the cheat"
    for t in cheats:
        assert t["state"] == "failed", t
        assert "Permission" in (t["error"] or "") or "denied" in (t["error"] or ""), t["error"]
    result = json.loads(out)
    assert result["champion"]["trainer"] == "logistic_regression"
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "cheat.py")
    for secret in SECRETS.values():
        assert secret.encode() not in stored
        assert secret not in out + err
