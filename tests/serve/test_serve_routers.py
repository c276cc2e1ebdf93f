"""Each API's router mounted alone on a bare FastAPI app: it needs only the service (and credentials) in app.state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from darkfab.serve import ModelService, ServeError
from darkfab.serve._deps import Credentials
from darkfab.serve._http import serve_error_handler
from darkfab.serve._routes_admin import router as admin_router
from darkfab.serve._routes_v1 import router as v1_router
from darkfab.serve._routes_v2 import router as v2_router
from darkfab.store import Store

from .conftest import LiveServer
from .test_serve_http import records, tensors


@pytest.fixture
def service(store: Store) -> Iterator[ModelService]:
    svc = ModelService(store=store, factory="kinds", log_predictions=False)
    try:
        yield svc
    finally:
        svc.close()


@pytest.fixture
def alone(service: ModelService) -> Iterator[Callable[..., httpx.Client]]:
    """Serve one router on a bare app (the error handler only, no middleware) over real HTTP."""
    servers: list[LiveServer] = []
    clients: list[httpx.Client] = []

    def serve(router: APIRouter, credentials: Credentials | None = None) -> httpx.Client:
        app = FastAPI()
        app.state.service = service
        app.state.credentials = credentials
        app.exception_handler(ServeError)(serve_error_handler)
        app.include_router(router)
        servers.append(LiveServer(app))
        clients.append(servers[-1].client())
        return clients[-1]

    try:
        yield serve
    finally:
        for c in clients:
            c.close()
        for s in servers:
            s.stop()


def test_the_v2_router_alone(alone: Callable[..., httpx.Client]) -> None:
    client = alone(v2_router)
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/kinds").json()["name"] == "kinds"
    r = client.post("/v2/models/kinds/infer", json={"inputs": tensors(records(2))})
    assert r.status_code == 200 and r.json()["outputs"][0]["shape"] == [2]
    assert client.get("/v1/routing").status_code == 404  # not this router's


def test_the_v1_router_alone(alone: Callable[..., httpx.Client]) -> None:
    client = alone(v1_router)
    r = client.post("/v1/models/kinds/predict", json=records(3))
    assert r.status_code == 200 and len(r.json()["predictions"]) == 3
    assert client.get("/v1/routing").json()["model"] == "kinds"


def test_the_admin_router_alone_checks_its_token(alone: Callable[..., httpx.Client], tmp_path: Path) -> None:
    client = alone(admin_router, Credentials(admin_token=b"t0ken", token_file=tmp_path / "token"))
    refused = client.get("/admin/status")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert str(tmp_path / "token") in refused.json()["error"]
    r = client.get("/admin/status", headers={"authorization": "Bearer t0ken"})
    assert r.status_code == 200 and r.json()["model"] == "kinds"
