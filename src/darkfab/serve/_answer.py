"""One prediction request from its body to its answer, the same for v1 and v2: the route is read once, the
body parsed and predicted (on the event loop when small, in a thread when large), the outcome counted."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ._errors import BadRequest, InputError, ModelNotFound, OutOfRange, PayloadTooLarge, ServeError, Unavailable
from ._http import error_response
from ._router import Route
from ._service import Answer, Deployment, ModelService

log = logging.getLogger("darkfab.serve")

INLINE_BYTES = 64 * 1024  # bodies up to this are parsed and predicted on the event loop; larger ones in a thread
_OUTCOME = {
    InputError: "invalid",
    OutOfRange: "invalid",
    BadRequest: "invalid",
    ModelNotFound: "not_found",
    PayloadTooLarge: "too_large",
    Unavailable: "paused",
}

Work = Callable[[ModelService, Route, bytes], Awaitable[Response] | Response]


def model_label(svc: ModelService, path: str) -> str:
    """The ``model`` label of a request path's metrics: the served name, or ``_unknown``."""
    parts = path.strip("/").split("/")
    name = parts[2] if len(parts) > 2 and parts[1] == "models" else ""
    return name if name in svc.names else "_unknown"


def rejected_counter(svc: ModelService) -> Callable[[str], None]:
    """What ``BodyLimit`` calls with the path of a body it refused as too large: count it."""

    def on_reject(path: str) -> None:
        endpoint = "v2_infer" if path.startswith("/v2/") else "v1_predict" if path.startswith("/v1/models") else "other"
        svc.metrics.request(model_label(svc, path), "", endpoint, "too_large", None)

    return on_reject


def answer_headers(got: Answer) -> dict[str, str]:
    return {"x-request-id": got.request_id, "x-model-version": str(got.deployment.version)}


async def answer(
    svc: ModelService, name: str, version: str | None, request: Request, endpoint: str, work: Work
) -> Response:
    """Run ``work`` on the request's route and body; errors become their responses, every outcome is counted."""
    metrics = svc.metrics
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
            result = await run_in_threadpool(work, svc, route, body)
        else:
            result = work(svc, route, body)
        response = await result if isinstance(result, Awaitable) else result
        answered = response.headers.get("x-model-version", "")
        outcome = "ok"
        return response
    except ServeError as err:
        outcome = _OUTCOME.get(type(err), "error")
        return error_response(err)
    except Exception:
        log.exception("prediction failed for model %r", name)
        return JSONResponse({"error": "the model failed on this input; the server logged the details"}, status_code=500)
    finally:
        metrics.in_flight.dec()
        label = dep.factory if dep is not None else model_label(svc, f"/v2/models/{name}")
        shown = answered or (str(dep.version) if dep else "")
        metrics.request(label, shown, endpoint, outcome, time.perf_counter() - start)
