"""Admin API over real HTTP: the token, promote and rollback swapping models under load, pause and resume."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from darkfab.errors import StoreError
from darkfab.serve import ModelService, create_app, ensure_token, read_token, token_path
from darkfab.store import Store

from .conftest import LiveServer
from .test_serve_http import records


@pytest.fixture(scope="module")
def server(private_store: Store) -> Iterator[LiveServer]:
    s = LiveServer(create_app(store=private_store, factory="kinds"))
    try:
        yield s
    finally:
        s.stop()


def _version(c: httpx.Client) -> int:
    r = c.post("/v1/models/kinds/predict", json=records(1))
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


def test_token_file_is_private_and_kept(server: LiveServer, private_store: Store) -> None:
    path = token_path(private_store.artifact_root)
    assert server.app.state.token_file == path and path.parent == Path(private_store.url.split("///")[1]).parent
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(server.token) >= 32 and ensure_token(path) == server.token  # made once, then reused


def test_a_readable_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "serve-token"
    path.write_text("abc\n")
    os.chmod(path, 0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        read_token(path)
    with pytest.raises(StoreError, match="no admin token file"):
        read_token(tmp_path / "missing")


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer wrong"}, {"authorization": "Basic abc"}, {"authorization": "Bearer"}],
    ids=["none", "wrong", "basic", "empty"],
)
@pytest.mark.parametrize("action", ["promote", "rollback", "pause", "resume", "status"])
def test_admin_needs_the_token(server: LiveServer, headers: dict[str, str], action: str) -> None:
    with server.client(headers=headers) as c:
        r = c.get("/admin/status") if action == "status" else c.post(f"/admin/{action}", json={"version": 2})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "token" in r.json()["error"]


def test_promote_and_rollback_move_champion_with_reasons(server: LiveServer, private_store: Store) -> None:
    fid = private_store.get_factory("kinds").id
    with server.client() as c, server.admin() as admin:
        assert _version(c) == 1
        r = admin.post("/admin/promote", json={"version": 2, "reason": "challenger wins live"})
        assert r.status_code == 200 and r.json() == {"model": "kinds", "version": 2, "previous": 1, "changed": True}
        assert _version(c) == 2
        assert c.get("/v2/models/kinds").json()["versions"] == ["2"]
        assert private_store.get_model_version(fid, "champion").version == 2
        event = private_store.list_events(factory_id=fid, kinds=("alias_set",))[-1]
        assert event.data == {"alias": "champion", "version": 2, "previous": 1}
        assert "challenger wins live" in event.reason
        assert admin.post("/admin/promote", json={"version": 2}).json()["changed"] is False

        r = admin.post("/admin/rollback", json={"reason": "error rate up"})
        assert r.status_code == 200 and r.json()["version"] == 1 and r.json()["previous"] == 2
        assert _version(c) == 1 and private_store.get_model_version(fid, "champion").version == 1
        assert "error rate up" in private_store.list_events(factory_id=fid, kinds=("alias_set",))[-1].reason
        r = admin.post("/admin/rollback")
        assert r.status_code == 409 and "no earlier champion" in r.json()["error"]

        assert admin.post("/admin/promote", json={"version": "challenger"}).json()["version"] == 2
        assert admin.post("/admin/rollback").json()["version"] == 1
        for bad, status in ((99, 404), (0, 400), ("", 400), (None, 400), (True, 400)):
            r = admin.post("/admin/promote", json={"version": bad})
            assert r.status_code == status, (bad, r.text)
        assert "versions: 1, 2" in admin.post("/admin/promote", json={"version": 99}).json()["error"]
        assert admin.post("/admin/promote", json={"version": 2, "model": "other"}).status_code == 404
        assert (
            admin.post("/admin/promote", content=b"{no", headers={"content-type": "application/json"}).status_code
            == 400
        )
        assert admin.post("/admin/promote", content=b"{no").status_code == 415  # JSON bodies say so
        assert _version(c) == 1
    assert private_store.verify_chain().ok


def test_pause_and_resume(server: LiveServer, private_store: Store) -> None:
    fid = private_store.get_factory("kinds").id
    with server.client() as c, server.admin() as admin:
        r = admin.post("/admin/pause", json={"reason": "drift alarm"})
        assert r.status_code == 200 and r.json()["paused"] is True
        assert c.get("/v2/health/ready").status_code == 503
        assert c.get("/v2/models/kinds/ready").status_code == 503
        assert c.get("/v2/health/live").status_code == 200
        p = c.post("/v1/models/kinds/predict", json=records(1))
        assert p.status_code == 503 and "paused" in p.json()["error"] and "drift alarm" in p.json()["error"]
        assert c.post("/v2/models/kinds/infer", json={"inputs": []}).status_code == 503
        assert admin.get("/admin/status").json()["paused"] is True
        # a server started while paused stays paused: the state is in the event log
        assert ModelService(store=private_store, factory="kinds", log_predictions=False).paused == "drift alarm"
        assert admin.post("/admin/resume", json={"reason": "checked"}).json()["paused"] is False
        assert c.get("/v2/health/ready").status_code == 200
        assert _version(c) == 1
    kinds = [e.kind for e in private_store.list_events(factory_id=fid, kinds=("serving_paused", "serving_resumed"))]
    assert kinds[-2:] == ["serving_paused", "serving_resumed"]
    assert "paused" in server.app.state.metrics.render().decode()


@pytest.mark.slow
def test_no_request_fails_while_promote_and_rollback_swap_models(server: LiveServer) -> None:
    threads, per_thread = 4, 200
    failures: list[str] = []
    versions: set[int] = set()
    lock = threading.Lock()
    body = records(2)

    def load() -> None:
        with server.client() as c:
            for i in range(per_thread):
                try:
                    if i % 2:
                        r = c.post("/v1/models/kinds/predict", json=body)
                        v = r.json().get("model_version") if r.status_code == 200 else None
                    else:
                        r = c.post(
                            "/v2/models/kinds/infer",
                            json={
                                "inputs": [
                                    {"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]},
                                    {"name": "count", "shape": [1], "datatype": "INT64", "data": [1]},
                                    {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]},
                                ]
                            },
                        )
                        v = int(r.json()["model_version"]) if r.status_code == 200 else None
                    with lock:
                        if r.status_code != 200:
                            failures.append(f"{r.status_code} {r.text[:200]}")
                        else:
                            versions.add(v)
                except httpx.HTTPError as exc:
                    with lock:
                        failures.append(repr(exc))

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for w in workers:
        w.start()
    swaps = 0
    with server.admin() as admin:
        while any(w.is_alive() for w in workers):
            action = "promote" if swaps % 2 == 0 else "rollback"
            r = admin.post(f"/admin/{action}", json={"version": 2} if action == "promote" else {})
            assert r.status_code == 200, r.text
            swaps += 1
        if swaps % 2:
            assert admin.post("/admin/rollback").status_code == 200
    for w in workers:
        w.join()
    assert failures == []
    assert versions <= {1, 2} and swaps >= 1


# -- the commands ------------------------------------------------------------------------------------


def test_cli_commands_call_the_admin_api(server: LiveServer, private_store: Store) -> None:
    import typer

    from darkfab.cli.serve import commands

    app = typer.Typer()
    commands.register(app)
    run = CliRunner().invoke
    common = ["--url", server.url, "--store", private_store.url]
    r = run(app, ["promote", "2", "--factory", "kinds", "--reason", "from the cli", "--json", *common])
    assert r.exit_code == 0, r.output
    assert '"version": 2' in r.stdout
    with server.client() as c:
        assert _version(c) == 2
    r = run(app, ["rollback", *common])
    assert r.exit_code == 0 and "rolled back to version 1" in r.output
    r = run(app, ["pause", "--reason", "maintenance", *common])
    assert r.exit_code == 0 and "paused" in r.output
    r = run(app, ["resume", *common])
    assert r.exit_code == 0 and "serving" in r.output
    r = run(app, ["promote", "2", "--url", server.url, "--token", "wrong"])
    assert r.exit_code == 1 and "refused the admin token" in r.output
    r = run(app, ["promote", "7", *common])
    assert r.exit_code == 1 and "404" in r.output
    r = run(app, ["pause", "--url", "http://127.0.0.1:9", "--token", "x"])
    assert r.exit_code == 1 and "cannot reach" in r.output
