"""Open Inference Protocol v2: health, metadata and inference.

Routes::

    GET  /v2/health/live                         200 while the process runs
    GET  /v2/health/ready                        200 when serving, 503 while paused
    GET  /v2                                     server metadata
    GET  /v2/models/{name}[/versions/{v}]        model metadata (inputs from the feature schema)
    GET  /v2/models/{name}[/versions/{v}]/ready  200 / 503
    POST /v2/models/{name}[/versions/{v}]/infer  OIP inference: one tensor per feature column, shape [n]
                                                 (or one tensor "input" [n, k] in feature order when every
                                                 feature is numeric)

The answer names its version (``model_version``) and its role (``parameters.role``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .. import __version__
from ._answer import answer, answer_headers
from ._deps import Service, service_of
from ._errors import InputError
from ._http import parse_json
from ._router import Route
from ._service import OUTPUTS, Answer, Deployment, ModelService, _class_datatype

router = APIRouter(prefix="/v2")

_INFER_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))


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


def v2_work(svc: ModelService, route: Route, body: bytes) -> Response:
    """Predict the tensors of an OIP inference request on ``route``."""
    req = parse_json(body)
    if not isinstance(req, dict):
        raise InputError('body: expected an inference request object {"inputs": [...]}', "body")
    extra = sorted(set(req) - _INFER_KEYS)
    if extra:
        raise InputError(f"body: unknown field(s) {extra}; an inference request holds {sorted(_INFER_KEYS)}", extra[0])
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
        headers=answer_headers(got),
    )


@router.post("/models/{name}/infer")
async def v2_infer(name: str, request: Request) -> Response:
    return await answer(service_of(request), name, None, request, "v2_infer", v2_work)


@router.post("/models/{name}/versions/{version}/infer")
async def v2_infer_version(name: str, version: str, request: Request) -> Response:
    return await answer(service_of(request), name, version, request, "v2_infer", v2_work)


def ready_response(svc: ModelService) -> JSONResponse:
    """200 ``{"ready": true}`` while serving; 503 with the operator's reason while paused."""
    ready = svc.ready()
    body: dict[str, Any] = {"ready": ready}
    if not ready:
        body["reason"] = f"paused by an operator: {svc.paused}"
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/health/live")
async def live() -> JSONResponse:
    return JSONResponse({"live": True})


@router.get("/health/ready")
async def ready(svc: Service) -> JSONResponse:
    return ready_response(svc)


@router.get("")
async def server_metadata(svc: Service) -> JSONResponse:
    return JSONResponse({"name": "darkfab", "version": __version__, "extensions": [], "models": svc.names})


@router.get("/models/{name}")
async def model_metadata(name: str, svc: Service) -> JSONResponse:
    return JSONResponse(svc.deployment(name).metadata())


@router.get("/models/{name}/versions/{version}")
async def model_version_metadata(name: str, version: str, svc: Service) -> JSONResponse:
    return JSONResponse(svc.deployment(name, version).metadata())


@router.get("/models/{name}/ready")
async def model_ready(name: str, svc: Service) -> JSONResponse:
    svc.deployment(name)
    return ready_response(svc)


@router.get("/models/{name}/versions/{version}/ready")
async def model_version_ready(name: str, version: str, svc: Service) -> JSONResponse:
    svc.deployment(name, version)
    return ready_response(svc)
