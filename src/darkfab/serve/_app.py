"""The HTTP face of the model server: Open Inference Protocol v2, a records API, feedback, admin, metrics.

Routes::

    GET  /v2/health/live                         200 while the process runs
    GET  /v2/health/ready                        200 when serving, 503 while paused
    GET  /v2                                     server metadata
    GET  /v2/models/{name}[/versions/{v}]        model metadata (inputs from the feature schema)
    GET  /v2/models/{name}[/versions/{v}]/ready  200 / 503
    POST /v2/models/{name}[/versions/{v}]/infer  OIP inference: one tensor per feature column, shape [n]
                                                 (or one tensor "input" [n, k] in feature order when every
                                                 feature is numeric)
    POST /v1/models/{name}/predict               [{feature: value}, ...] or {"records": [...]}
    POST /v1/feedback                            {"request_id", "label", "row"?}: the true answer
    GET  /v1/routing                             routing state (champion, challenger, mode, share) and live
                                                 figures per version, no token: for dashboards
    GET  /metrics                                Prometheus text format, live figures labelled by version and role
    POST /admin/promote|rollback|pause|resume    bearer token; each recorded as an event with its reason
    GET  /admin/status                           bearer token

Every prediction answer names the version that produced it (``model_version``) and its ``role``
(``champion`` or ``challenger``: v1 top level, v2 ``parameters``); see ``_router`` for canary and shadow.

Errors are ``{"error": message, "field"?: where}`` with a 4xx status; the server never unpickles what a
request sends (bodies are JSON), and a body over ``max_body_bytes`` is refused with 413 before it is read.
Before any route: a foreign Host is 421, a POST with a foreign Origin 403, a body not declared JSON 415
(``_guard``). A 500 means the model raised on rows that passed every input check; it is recorded.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import DarkfabError
from ..spec import DeploySpec
from ..store import Store
from ._decide import DEFAULT_LATENCY_FLOOR_MS
from ._errors import (
    BadRequest,
    InputError,
    ModelNotFound,
    OutOfRange,
    PayloadTooLarge,
    ServeError,
    Unauthorized,
    Unavailable,
)
from ._guard import LOOPBACK_HOSTS, Guard, host_allowlist
from ._metrics import CONTENT_TYPE, ServeMetrics
from ._router import Route
from ._service import OUTPUTS, Answer, Deployment, ModelService, _class_datatype, reason_of
from ._token import ensure_token, token_path

log = logging.getLogger("darkfab.serve")

DEFAULT_MAX_BODY = 1_000_000
DRAIN_BYTES = 16 * 1024 * 1024  # the most of an oversized body read (and dropped) before the 413 is sent
INLINE_BYTES = 64 * 1024  # bodies up to this are parsed and predicted on the event loop; larger ones in a thread
_OUTCOME = {
    InputError: "invalid",
    OutOfRange: "invalid",
    BadRequest: "invalid",
    ModelNotFound: "not_found",
    PayloadTooLarge: "too_large",
    Unavailable: "paused",
}
_INFER_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))


def _error(err: ServeError, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status, headers=headers)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("body: empty; send a JSON document (Content-Type: application/json)", "body")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as err:
        raise BadRequest(f"body: not valid JSON ({err}); send a JSON document", "body") from None


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, by its Content-Length or by the bytes that arrive."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, on_reject: Callable[[str], None]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_reject = on_reject

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, err: ServeError, more: bool = True) -> None:
        if isinstance(err, PayloadTooLarge):
            self.on_reject(scope.get("path", ""))
        # read (and drop) a bounded amount of what the client is still sending: closing on unread bytes
        # makes the kernel reset the connection, and the client may then never see the 413
        drained = 0
        while more and drained < DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        await _error(err, {"connection": "close"})(scope, _nothing, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    err = BadRequest("Content-Length is not a number", "Content-Length")
                    await self._refuse(scope, receive, send, err, more=False)
                    return
        too_large = PayloadTooLarge(
            f"body: over the limit of {self.max_bytes} bytes; fix: send fewer rows per request", "body"
        )
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, too_large)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, too_large, more=message.get("more_body", False))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _nothing() -> Message:  # pragma: no cover - a JSONResponse never reads the request
    return {"type": "http.disconnect"}


def _infer_outputs(dep: Deployment, answer: Answer, requested: Any) -> list[dict[str, Any]]:
    names = list(OUTPUTS if dep.task != "regression" else OUTPUTS[:1])
    if requested is not None:
        if not isinstance(requested, list) or not all(isinstance(o, dict) and "name" in o for o in requested):
            raise InputError('outputs: expected a list of {"name": ...} objects', "outputs")
        wanted = [o["name"] for o in requested]
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise InputError(f"outputs: unknown output(s) {unknown}; this model has {names}", "outputs")
        names = [n for n in names if n in wanted]
    n = len(answer.predictions)
    out: list[dict[str, Any]] = []
    for name in names:
        if name == "predictions":
            datatype = "FP64" if dep.task == "regression" else _class_datatype(dep.classes)
            data = answer.predictions
            if datatype == "BYTES":
                data = [p if isinstance(p, str) else str(p) for p in data]
            out.append({"name": name, "datatype": datatype, "shape": [n], "data": data})
        else:
            assert answer.probabilities is not None  # classification: always computed
            flat = [p for row in answer.probabilities for p in row]
            out.append(
                {
                    "name": name,
                    "datatype": "FP64",
                    "shape": [n, len(dep.classes)],
                    "data": flat,
                    "parameters": {"classes": list(dep.classes)},
                }
            )
    return out


def create_app(
    *,
    store: Store,
    factory: str,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    token_file: str | Path | None = None,
    log_predictions: bool = True,
    flush_interval_s: float = 0.2,
    flush_rows: int = 500,
    deploy: DeploySpec | None = None,
    poll_interval_s: float = 1.0,
    seed: int | None = None,
    latency_floor_ms: float = DEFAULT_LATENCY_FLOOR_MS,
    shadow_capacity: int = 1000,
    allowed_hosts: Iterable[str] | None = None,
    feedback_token: str | None = None,
) -> FastAPI:
    """The model server of ``factory``'s champion (and challenger), as an ASGI app (serve it with uvicorn).

    The champion is loaded now (its artifact's hash verified), so a missing or damaged model fails here,
    not at the first request. The admin token is read from ``token_file`` (default: ``serve-token`` next
    to the store), or made there with mode 0600 when the file does not exist.

    Routing follows ``deploy`` when given, else the deploy section of the factory's stored spec: a
    ``challenger`` gets a canary share of requests or a shadow copy of them, and is promoted or rolled
    back after ``deploy.min_requests``. Alias moves made elsewhere are picked up every ``poll_interval_s``.
    ``seed`` seeds the canary draw; ``latency_floor_ms`` is the p95 below which latencies count as equal.

    ``allowed_hosts``: the names the Host header may carry (default: the loopback names; ``*`` for any; see
    ``_guard``). ``feedback_token``: when given, ``/v1/feedback`` needs ``Authorization: Bearer <it>``.
    """
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be >= 1, got {max_body_bytes}")
    metrics = ServeMetrics()
    svc = ModelService(
        store=store,
        factory=factory,
        metrics=metrics,
        log_predictions=log_predictions,
        flush_interval_s=flush_interval_s,
        flush_rows=flush_rows,
        deploy=deploy,
        poll_interval_s=poll_interval_s,
        seed=seed,
        latency_floor_ms=latency_floor_ms,
        shadow_capacity=shadow_capacity,
    )
    token_at = Path(token_file) if token_file is not None else token_path(store.artifact_root)
    token = ensure_token(token_at).encode()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        svc.start()
        try:
            yield
        finally:
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title=f"darkfab model server: {factory}",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = svc
    app.state.metrics = metrics
    app.state.token_file = token_at

    def model_label(path: str) -> str:
        parts = path.strip("/").split("/")
        name = parts[2] if len(parts) > 2 and parts[1] == "models" else ""
        return name if name in svc.names else "_unknown"

    def on_reject(path: str) -> None:
        endpoint = "v2_infer" if path.startswith("/v2/") else "v1_predict" if path.startswith("/v1/models") else "other"
        metrics.request(model_label(path), "", endpoint, "too_large", None)

    hosts = frozenset(LOOPBACK_HOSTS) if allowed_hosts is None else host_allowlist(allowed_hosts)
    app.add_middleware(Guard, hosts=hosts)  # inside BodyLimit: an oversized body is 413 whatever it claims to be
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, on_reject=on_reject)
    if feedback_token is not None and not feedback_token.strip():
        raise ValueError("feedback_token: empty; give a secret, or None for feedback without a credential")
    feedback_secret = feedback_token.strip().encode() if feedback_token is not None else None

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, err: ServeError) -> JSONResponse:
        headers = {"www-authenticate": "Bearer"} if isinstance(err, Unauthorized) else None
        return _error(err, headers)

    @app.exception_handler(DarkfabError)
    async def darkfab_error(_: Request, err: DarkfabError) -> JSONResponse:
        log.error("request failed: %s", err)
        return JSONResponse({"error": str(err)}, status_code=500)

    # -- predictions -------------------------------------------------------------------------------

    async def answer(
        name: str,
        version: str | None,
        request: Request,
        endpoint: str,
        work: Callable[[Route, bytes], Awaitable[Response] | Response],
    ) -> Response:
        start = time.perf_counter()
        metrics.in_flight.inc()
        dep: Deployment | None = None
        answered = ""
        outcome = "error"
        try:
            route = svc.route(name, version)  # read once: a swap cannot change it under this request
            dep = route.deployment
            svc.check_serving()
            body = await request.body()
            if len(body) > INLINE_BYTES:
                result = await run_in_threadpool(work, route, body)
            else:
                result = work(route, body)
            response = await result if isinstance(result, Awaitable) else result
            answered = response.headers.get("x-model-version", "")
            outcome = "ok"
            return response
        except ServeError as err:
            outcome = _OUTCOME.get(type(err), "error")
            return _error(err)
        except Exception:
            log.exception("prediction failed for model %r", name)
            return JSONResponse(
                {"error": "the model failed on this input; the server logged the details"}, status_code=500
            )
        finally:
            metrics.in_flight.dec()
            label = dep.factory if dep is not None else model_label(f"/v2/models/{name}")
            shown = answered or (str(dep.version) if dep else "")
            metrics.request(label, shown, endpoint, outcome, time.perf_counter() - start)

    def headers(got: Answer) -> dict[str, str]:
        return {"x-request-id": got.request_id, "x-model-version": str(got.deployment.version)}

    def v1_work(route: Route, body: bytes) -> Response:
        frame, rows = route.deployment.schema.from_records(parse_json(body))
        got = svc.predict(route, frame, rows)
        dep = got.deployment
        out: dict[str, Any] = {
            "model_name": dep.factory,
            "model_version": dep.version,
            "role": got.role,
            "request_id": got.request_id,
        }
        out["predictions"] = got.predictions
        if got.probabilities is not None:
            out["probabilities"] = got.probabilities
            out["classes"] = list(dep.classes)
        return JSONResponse(out, headers=headers(got))

    def v2_work(route: Route, body: bytes) -> Response:
        req = parse_json(body)
        if not isinstance(req, dict):
            raise InputError('body: expected an inference request object {"inputs": [...]}', "body")
        extra = sorted(set(req) - _INFER_KEYS)
        if extra:
            raise InputError(
                f"body: unknown field(s) {extra}; an inference request holds {sorted(_INFER_KEYS)}", extra[0]
            )
        if "inputs" not in req:
            raise InputError("inputs: required (one tensor per feature)", "inputs")
        frame, rows = route.deployment.schema.from_tensors(req["inputs"])
        got = svc.predict(route, frame, rows)
        dep = got.deployment
        outputs = _infer_outputs(dep, got, req.get("outputs"))
        client_id = req.get("id")
        return JSONResponse(
            {
                "model_name": dep.factory,
                "model_version": str(dep.version),
                "id": client_id if isinstance(client_id, str) else got.request_id,
                "parameters": {"request_id": got.request_id, "role": got.role},
                "outputs": outputs,
            },
            headers=headers(got),
        )

    @app.post("/v1/models/{name}/predict")
    async def v1_predict(name: str, request: Request) -> Response:
        return await answer(name, None, request, "v1_predict", v1_work)

    @app.post("/v2/models/{name}/infer")
    async def v2_infer(name: str, request: Request) -> Response:
        return await answer(name, None, request, "v2_infer", v2_work)

    @app.post("/v2/models/{name}/versions/{version}/infer")
    async def v2_infer_version(name: str, version: str, request: Request) -> Response:
        return await answer(name, version, request, "v2_infer", v2_work)

    @app.post("/v1/feedback")
    async def feedback(request: Request) -> Response:
        if feedback_secret is not None:
            scheme, _, credential = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(credential.strip().encode(), feedback_secret):
                raise Unauthorized(
                    "feedback: this server takes labels only with its feedback token; fix: send "
                    "'Authorization: Bearer <token>' (the --feedback-token the server was started with)"
                )
        body = parse_json(await request.body())
        return JSONResponse(await run_in_threadpool(svc.feedback, body))

    # -- health and metadata -----------------------------------------------------------------------

    def ready_response(ready: bool) -> JSONResponse:
        body: dict[str, Any] = {"ready": ready}
        if not ready:
            body["reason"] = f"paused by an operator: {svc.paused}"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/v2/health/live")
    async def live() -> JSONResponse:
        return JSONResponse({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> JSONResponse:
        return ready_response(svc.ready())

    @app.get("/v2")
    async def server_metadata() -> JSONResponse:
        return JSONResponse({"name": "darkfab", "version": __version__, "extensions": [], "models": svc.names})

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> JSONResponse:
        return JSONResponse(svc.deployment(name).metadata())

    @app.get("/v2/models/{name}/versions/{version}")
    async def model_version_metadata(name: str, version: str) -> JSONResponse:
        return JSONResponse(svc.deployment(name, version).metadata())

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> JSONResponse:
        svc.deployment(name)
        return ready_response(svc.ready())

    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_version_ready(name: str, version: str) -> JSONResponse:
        svc.deployment(name, version)
        return ready_response(svc.ready())

    @app.get("/v1/routing")
    async def routing() -> JSONResponse:
        return JSONResponse(await run_in_threadpool(svc.routing_status))

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # -- admin -------------------------------------------------------------------------------------

    async def admin_body(request: Request) -> dict[str, Any]:
        given = request.headers.get("authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            raise Unauthorized(
                f"admin API: send the token as 'Authorization: Bearer <token>'; it is in {token_at} on the server"
            )
        if not secrets.compare_digest(credential.strip().encode(), token):
            raise Unauthorized("admin API: the bearer token is wrong")
        raw = await request.body()
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object", "body")
        model = body.get("model", body.get("factory"))
        if model is not None and model != svc.factory:
            raise ModelNotFound(f"model {model!r} is not served here; served models: {svc.names}")
        return body

    @app.post("/admin/promote")
    async def promote(request: Request) -> JSONResponse:
        body = await admin_body(request)
        ref = body.get("version")
        if isinstance(ref, str) and ref.strip().lstrip("v").isdigit():
            ref = int(ref.strip().lstrip("v"))
        if isinstance(ref, bool) or not isinstance(ref, (int, str)) or ref == "" or (isinstance(ref, int) and ref < 1):
            raise BadRequest("version: expected a version number (>= 1) or an alias such as 'challenger'", "version")
        reason = reason_of(body, "promoted through the admin API")
        return JSONResponse(await run_in_threadpool(svc.promote, ref, reason))

    @app.post("/admin/rollback")
    async def rollback(request: Request) -> JSONResponse:
        body = await admin_body(request)
        return JSONResponse(await run_in_threadpool(svc.rollback, reason_of(body, "rolled back through the admin API")))

    @app.post("/admin/pause")
    async def pause(request: Request) -> JSONResponse:
        body = await admin_body(request)
        return JSONResponse(await run_in_threadpool(svc.pause, reason_of(body, "paused through the admin API")))

    @app.post("/admin/resume")
    async def resume(request: Request) -> JSONResponse:
        body = await admin_body(request)
        return JSONResponse(await run_in_threadpool(svc.resume, reason_of(body, "resumed through the admin API")))

    @app.get("/admin/status")
    async def admin_status(request: Request) -> JSONResponse:
        await admin_body(request)
        return JSONResponse(svc.status())

    return app
