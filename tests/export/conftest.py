"""A store with one trained, registered model, made once by `darkfab run`, and a real `mlflow server`, for the
export tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.cli.conftest import CLI

from ..helpers.loopback import free_port

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


@pytest.fixture(scope="session")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on loopback (SQLite backend, local artifacts), shared by the MLflow tests."""
    pytest.importorskip("mlflow", reason="MLflow is not installed (the mlflow extra; CI installs it via dev)")
    folder: Path = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (folder / "server.log").open("w")  # a file, not a pipe nobody reads: a full pipe would stall the server
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers are its children: stopped together, by process group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited {server.returncode}: {(folder / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 180 s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        log.close()
