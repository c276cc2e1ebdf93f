"""`darkfab serve` and the operator commands that talk to a running server (promote, rollback, pause, resume)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from ..errors import DarkfabError
from ..registry import parse_version_ref
from ._common import Commands, FactoryArg, JsonOpt, StoreOpt, err

commands = Commands()

UrlOpt = Annotated[str, typer.Option("--url", help="the model server's address")]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token", help="admin token (default: read from serve-token next to the store)", envvar="DARKFAB_SERVE_TOKEN"
    ),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="why; recorded in the event log")]
DEFAULT_URL = "http://127.0.0.1:8000"
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-host",
        help="a name the server may be reached by (Host header), besides the loopback names and the address "
        "bound; repeat for several; '*' allows any (only behind a proxy that checks Host)",
    ),
]
FeedbackTokenOpt = Annotated[
    str | None,
    typer.Option(
        "--feedback-token",
        help="require 'Authorization: Bearer <this>' on /v1/feedback; use it when untrusted clients can reach the "
        "server",
        envvar="DARKFAB_FEEDBACK_TOKEN",
    ),
]


def _token(token: str | None, store: str | None) -> str:
    if token:
        return token
    from ..serve import read_token, token_path
    from ..store import Store

    with Store(store) as st:
        path = token_path(st.artifact_root)
    return read_token(path)


def _admin(action: str, url: str, token: str | None, store: str | None, body: dict[str, Any]) -> dict[str, Any]:
    import httpx

    secret = _token(token, store)
    target = f"{url.rstrip('/')}/admin/{action}"
    try:
        r = httpx.post(target, json=body, headers={"authorization": f"Bearer {secret}"}, timeout=60)
    except httpx.HTTPError as exc:
        raise DarkfabError(
            f"cannot reach the model server at {url} ({exc}); fix: start it with `darkfab serve`, or pass --url"
        ) from None
    try:
        answer = r.json()
    except ValueError:
        answer = {"error": r.text[:300]}
    if r.status_code == 401:
        raise DarkfabError(f"the server at {url} refused the admin token: {answer.get('error')}; fix: pass --token")
    if r.status_code >= 400:
        raise DarkfabError(f"{action} failed ({r.status_code}): {answer.get('error', answer)}")
    return answer


def _report(answer: dict[str, Any], as_json: bool, line: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
    else:
        err.print(line, highlight=False)


@commands.command()
def serve(
    factory: FactoryArg = None,
    host: Annotated[str, typer.Option("--host", help="address to bind (loopback unless you mean it)")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
    store: StoreOpt = None,
    max_body: Annotated[int, typer.Option("--max-body", help="largest request body in bytes")] = 1_000_000,
    no_log: Annotated[bool, typer.Option("--no-log", help="do not log predictions to the store")] = False,
    allow_host: AllowHostOpt = None,
    feedback_token: FeedbackTokenOpt = None,
) -> None:
    """Serve a factory's champion (and challenger, by the factory's deploy section): Open Inference Protocol v2
    over HTTP, routing and live figures at /v1/routing, metrics at /metrics."""
    import logging

    from ..runtime import alias_mirror, resolve_factory
    from ..serve import serve as run_server
    from ..store import REQUEST_WAIT_S, Store

    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the store's schema check is not the server's news
    # an admin or routing read waits seconds for a store that is out, then answers 503; predictions never wait
    with Store(store, outage_wait_s=REQUEST_WAIT_S) as st:
        name = resolve_factory(st, factory)
        run_server(
            name,
            store=st,
            host=host,
            port=port,
            max_body_bytes=max_body,
            log_predictions=not no_log,
            allow_hosts=allow_host or (),
            feedback_token=feedback_token,
            on_aliases_moved=alias_mirror(st, name),  # registry.mlflow follows the server's alias moves
        )


@commands.command()
def promote(
    version: Annotated[str, typer.Argument(help="version number (or an alias such as challenger)")],
    url: UrlOpt = DEFAULT_URL,
    token: TokenOpt = None,
    store: StoreOpt = None,
    reason: ReasonOpt = None,
    factory: Annotated[str | None, typer.Option("--factory", help="the factory the server must be serving")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Point `champion` at VERSION (`challenger` ends a canary or shadow early); the server swaps to it
    without dropping a request."""
    body: dict[str, Any] = {"version": parse_version_ref(version)}
    if factory:
        from ..runtime import is_factory_file
        from ..spec import load_spec

        body["model"] = load_spec(factory).name if is_factory_file(factory) else factory
    if reason:
        body["reason"] = reason
    a = _admin("promote", url, token, store, body)
    _report(a, as_json, f"{a['model']}: champion is version {a['version']} (was {a['previous']})")


def _server_action(action: str) -> Callable[..., None]:
    """The command that asks a running server to ``action`` (rollback, pause or resume)."""

    def command(
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
        store: StoreOpt = None,
        reason: ReasonOpt = None,
        as_json: JsonOpt = False,
    ) -> None:
        a = _admin(action, url, token, store, {"reason": reason} if reason else {})
        if action == "rollback" and a.get("dropped") is not None:
            line = f"{a['model']}: challenger version {a['dropped']} dropped; champion stays version {a['version']}"
        elif action == "rollback":
            line = f"{a['model']}: rolled back to version {a['version']} (was {a['previous']})"
        else:
            line = f"{a['model']}: {'paused' if a['paused'] else 'serving'} ({a['reason']})"
        _report(a, as_json, line)

    return command


commands.command(
    "rollback",
    help="Drop the challenger when the server routes one (canary, shadow); otherwise point `champion` back at the "
    "version that held it before. The server swaps without dropping a request.",
)(_server_action("rollback"))
commands.command(
    "pause",
    help="Stop a running server answering predictions (503) and report not ready, until `darkfab resume` "
    "(`darkfab pause-factory` stops a factory's trials instead).",
)(_server_action("pause"))
commands.command("resume", help="Answer predictions again after `darkfab pause`.")(_server_action("resume"))
