"""The admin API (a bearer token; each action recorded as an event with its reason) and Prometheus metrics.

Routes::

    POST /admin/promote|rollback|pause|resume    {"version"? (promote), "reason"?, "model"?}
    GET  /admin/status
    GET  /metrics                                Prometheus text format, no token: live figures labelled by
                                                 version and role
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ._deps import AdminBody, Service, admin_body
from ._errors import BadRequest
from ._metrics import CONTENT_TYPE
from ._service import reason_of

router = APIRouter(prefix="/admin", dependencies=[Depends(admin_body)])
metrics_router = APIRouter()


def _version_ref(ref: object) -> int | str:
    """A version number (``3``, ``"v3"``) or an alias, as the promote body gives it."""
    if isinstance(ref, str) and ref.strip().lstrip("v").isdigit():
        ref = int(ref.strip().lstrip("v"))
    if isinstance(ref, bool) or not isinstance(ref, (int, str)) or ref == "" or (isinstance(ref, int) and ref < 1):
        raise BadRequest("version: expected a version number (>= 1) or an alias such as 'challenger'", "version")
    return ref


@router.post("/promote")
async def promote(body: AdminBody, svc: Service) -> JSONResponse:
    ref = _version_ref(body.get("version"))
    reason = reason_of(body, "promoted through the admin API")
    return JSONResponse(await run_in_threadpool(svc.promote, ref, reason))


@router.post("/rollback")
async def rollback(body: AdminBody, svc: Service) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(svc.rollback, reason_of(body, "rolled back through the admin API")))


@router.post("/pause")
async def pause(body: AdminBody, svc: Service) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(svc.pause, reason_of(body, "paused through the admin API")))


@router.post("/resume")
async def resume(body: AdminBody, svc: Service) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(svc.resume, reason_of(body, "resumed through the admin API")))


@router.get("/status")
async def admin_status(svc: Service) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(svc.status))  # it reads the store: never on the event loop


@metrics_router.get("/metrics")
async def prometheus(svc: Service) -> Response:
    return Response(svc.metrics.render(), media_type=CONTENT_TYPE)
