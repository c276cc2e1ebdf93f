"""Fixtures of the model server tests: small real factories, and real uvicorn servers on loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

import darkfab
from darkfab.registry import Registry
from darkfab.serve import create_app
from darkfab.spec import spec_from_dict
from darkfab.store import Store

from ..helpers.serving import register_copy


def _spec(name: str, source: str, target: str, trainer: str = "logistic_regression") -> Any:
    return spec_from_dict(
        {
            "name": name,
            "data": {"source": source, "target": target},
            "trainers": [{"name": trainer}],
            "budget": {"trials": 3},
            "execution": {"workers": 1},
            "gate": {"bootstrap": 200},
        }
    )


def rows_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": x,
            "count": rng.integers(0, 5, size=n),
            "colour": rng.choice(["red", "green", "blue"], size=n),
        }
    )
    df["kind"] = np.where(x + (df["colour"] == "red") > 0, "good", "bad")
    return df


@dataclass
class Built:
    url: str
    folder: Path
    kinds: str = "kinds"  # classification: x (numeric), count (numeric), colour (categorical)
    diabetes: str = "diabetes"  # regression, every feature numeric


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One store with two factories run for real; ``kinds`` has a second version (v2, alias challenger)."""
    folder = tmp_path_factory.mktemp("serve")
    rows_frame().to_csv(folder / "rows.csv", index=False)
    url = f"sqlite:///{folder / 's.db'}"
    with Store(url) as store:
        darkfab.Factory(_spec("kinds", str(folder / "rows.csv"), "kind"), store=store).run()
        darkfab.Factory(_spec("diabetes", "sklearn:diabetes", "target", "linear_regression"), store=store).run()
        registry = Registry(store)
        v1, blob = registry.load_bytes("kinds", "champion")
        register_copy(
            registry, "kinds", v1, blob, reason="a second version for the serving tests", aliases=("challenger",)
        )
    return Built(url=url, folder=folder)


class LiveServer:
    """A uvicorn server in a thread, on a loopback port the OS picked."""

    def __init__(self, app: Any) -> None:
        self.app = app
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)

    @property
    def service(self) -> Any:
        return self.app.state.service

    @property
    def token(self) -> str:
        return self.app.state.token_file.read_text().strip()

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)

    def admin(self) -> httpx.Client:
        return self.client(headers={"authorization": f"Bearer {self.token}"})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def store(built: Built) -> Iterator[Store]:
    with Store(built.url) as st:
        yield st


@pytest.fixture(scope="module")
def kinds_server(built: Built, store: Store) -> Iterator[LiveServer]:
    server = LiveServer(create_app(store=store, factory=built.kinds))
    try:
        yield server
    finally:
        server.stop()


def copy_store(built: Built, dest: Path) -> str:
    """A private copy of the built store (database and artifacts), for tests that move aliases."""
    import shutil
    import sqlite3

    dest.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(built.folder / "s.db")
    dst = sqlite3.connect(dest / "s.db")
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    shutil.copytree(built.folder / "artifacts", dest / "artifacts")
    shutil.copy(built.folder / "audit.key", dest)  # a store is its database and its audit key
    return f"sqlite:///{dest / 's.db'}"


@pytest.fixture(scope="module")
def private_store(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with Store(copy_store(built, tmp_path_factory.mktemp("private"))) as st:
        yield st


@pytest.fixture
def fresh_store(built: Built, tmp_path: Path) -> Iterator[Store]:
    """A private copy of the built store for one test: kinds v1 champion, v2 challenger (the same bytes)."""
    with Store(copy_store(built, tmp_path / "fresh")) as st:
        yield st
