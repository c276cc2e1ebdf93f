"""The records API (v1): predictions from JSON records, feedback, and the routing state for dashboards.

Routes::

    POST /v1/models/{name}/predict   [{feature: value}, ...] or {"records": [...]}
    POST /v1/feedback                {"request_id", "label", "row"?}: the true answer (a bearer token when
                                     the server was given a feedback token)
    GET  /v1/routing                 routing state (champion, challenger, mode, share) and live figures
                                     per version, no token: for dashboards
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ._answer import answer, answer_headers
from ._deps import Service, feedback_allowed, service_of
from ._http import parse_json
from ._router import Route
from ._service import ModelService

router = APIRouter(prefix="/v1")


def v1_work(svc: ModelService, route: Route, body: bytes) -> Response:
    """Predict the records of a v1 body on ``route``."""
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
    return JSONResponse(out, headers=answer_headers(got))


@router.post("/models/{name}/predict")
async def v1_predict(name: str, request: Request) -> Response:
    return await answer(service_of(request), name, None, request, "v1_predict", v1_work)


@router.post("/feedback", dependencies=[Depends(feedback_allowed)])
async def feedback(request: Request, svc: Service) -> Response:
    body = parse_json(await request.body())
    return JSONResponse(await run_in_threadpool(svc.feedback, body))


@router.get("/routing")
async def routing(svc: Service) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(svc.routing_status))
