"""A store with one trained, registered model, made once by `darkfab run`, for the export tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.cli.conftest import CLI

FACTORY = """\
name: exported
data: {source: rows.csv, target: kind}
trainers: [logistic_regression]
search: {proposer: random, pruner: none}
budget: {trials: 2}
execution: {workers: 1, latency_rows: 2}
gate: {bootstrap: 100}
"""


def rows(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame({"x": x, "count": rng.integers(0, 5, size=n), "colour": rng.choice(["red", "blue"], size=n)})
    df["kind"] = np.where(x + (df["colour"] == "red") > 0.3, "good", "bad")
    return df


@dataclass(frozen=True)
class Trained:
    folder: Path
    cli: CLI
    store: str

    def records(self, n: int = 6) -> list[dict[str, object]]:
        return rows(n, seed=7).drop(columns=["kind"]).to_dict(orient="records")


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    folder = tmp_path_factory.mktemp("exported")
    rows().to_csv(folder / "rows.csv", index=False)
    (folder / "factory.yaml").write_text(FACTORY)
    cli = CLI(folder)
    cli("run", "factory.yaml", "--json")
    yield Trained(folder=folder, cli=cli, store=f"sqlite:///{folder / '.darkfab' / 'darkfab.db'}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
