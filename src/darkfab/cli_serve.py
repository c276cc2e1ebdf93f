"""`darkfab serve` and the operator commands that talk to a running server (promote, rollback, pause, resume).

cli.py calls :func:`register` to add them to the `darkfab` command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._cli_common import StoreOpt, err
from ._cli_common import fail as _fail
from .errors import DarkfabError

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


def _factory_name(ref: str | None) -> str | None:
    if ref is not None and (ref.endswith((".yaml", ".yml")) or Path(ref).is_file()):
        from .spec import load_spec

        return load_spec(ref).name
    return ref


def _token(token: str | None, store: str | None) -> str:
    if token:
        return token
    from .serve import read_token, token_path
    from .store import Store

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


def register(app: typer.Typer) -> None:
    """Add `serve`, `promote`, `rollback`, `pause` and `resume` to ``app``."""

    @app.command()
    def serve(
        factory: Annotated[
            str | None, typer.Argument(help="factory name or file; the store's only one if absent")
        ] = None,
        host: Annotated[
            str, typer.Option("--host", help="address to bind (loopback unless you mean it)")
        ] = "127.0.0.1",
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

        from .serve import serve as run_server

        logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
        try:
            run_server(
                _factory_name(factory),
                store=store,
                host=host,
                port=port,
                max_body_bytes=max_body,
                log_predictions=not no_log,
                allow_hosts=allow_host or (),
                feedback_token=feedback_token,
            )
        except DarkfabError as exc:
            _fail(exc)

    @app.command()
    def promote(
        version: Annotated[str, typer.Argument(help="version number (or an alias such as challenger)")],
        factory: Annotated[str | None, typer.Option("--factory", help="the factory the server must be serving")] = None,
        url: UrlOpt = DEFAULT_URL,
        token: TokenOpt = None,
        store: StoreOpt = None,
        reason: ReasonOpt = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON")] = False,
    ) -> None:
        """Point `champion` at VERSION (`challenger` ends a canary or shadow early); the server swaps to it
        without dropping a request."""
        bare = version.removeprefix("v")
        ref: int | str = int(bare) if bare.isdigit() else version
        body: dict[str, Any] = {"version": ref}
        if factory:
            body["model"] = _factory_name(factory)
        if reason:
            body["reason"] = reason
        try:
            a = _admin("promote", url, token, store, body)
        except DarkfabError as exc:
            _fail(exc)
            return
        _report(a, as_json, f"{a['model']}: champion is version {a['version']} (was {a['previous']})")

    def simple(action: str, doc: str) -> None:
        def command(
            url: UrlOpt = DEFAULT_URL,
            token: TokenOpt = None,
            store: StoreOpt = None,
            reason: ReasonOpt = None,
            as_json: Annotated[bool, typer.Option("--json", help="print the server's answer as JSON")] = False,
        ) -> None:
            try:
                a = _admin(action, url, token, store, {"reason": reason} if reason else {})
            except DarkfabError as exc:
                _fail(exc)
                return
            if action == "rollback" and a.get("dropped") is not None:
                line = f"{a['model']}: challenger version {a['dropped']} dropped; champion stays version {a['version']}"
            elif action == "rollback":
                line = f"{a['model']}: rolled back to version {a['version']} (was {a['previous']})"
            else:
                line = f"{a['model']}: {'paused' if a['paused'] else 'serving'} ({a['reason']})"
            _report(a, as_json, line)

        command.__doc__ = doc
        app.command(action)(command)

    simple(
        "rollback",
        "Drop the challenger when the server routes one (canary, shadow); otherwise point `champion` back at the "
        "version that held it before. The server swaps without dropping a request.",
    )
    simple(
        "pause",
        "Stop a running server answering predictions (503) and report not ready, until `darkfab resume` "
        "(`darkfab pause-factory` stops a factory's trials instead).",
    )
    simple("resume", "Answer predictions again after `darkfab pause`.")
