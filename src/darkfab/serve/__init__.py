"""The model server: a factory's champion over Open Inference Protocol v2 (HTTP), with a prediction log,
Prometheus metrics and an admin API (promote, rollback, pause, resume) behind a bearer token.

A ``challenger`` gets a canary share of requests or a shadow copy of them (deploy.mode), is judged on
live figures (error rate, p95 latency, live quality) and promoted or rolled back by the server itself;
alias moves made elsewhere are picked up by polling the store."""

from __future__ import annotations

from ..store import resolve_factory
from ._app import create_app
from ._decide import MIN_LABELLED, ContestFigures, Figures, Verdict, judge
from ._errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InputError,
    MisdirectedHost,
    ModelFailed,
    ModelNotFound,
    OutOfRange,
    PayloadTooLarge,
    ServeError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from ._guard import LOOPBACK_HOSTS, Guard, host_allowlist
from ._http import DEFAULT_MAX_BODY, BodyLimit
from ._inputs import FeatureSchema
from ._live import LiveBook, LiveFigures
from ._log import PredictionLogger
from ._metrics import ServeMetrics
from ._router import Route, Routing
from ._run import DEFAULT_HOST, DEFAULT_PORT, serve
from ._service import CHALLENGER, CHAMPION, Deployment, ModelService, load_deployment
from ._token import TOKEN_FILE, ensure_token, read_token, token_path

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY",
    "DEFAULT_PORT",
    "LOOPBACK_HOSTS",
    "MIN_LABELLED",
    "TOKEN_FILE",
    "BadRequest",
    "BodyLimit",
    "Conflict",
    "ContestFigures",
    "Deployment",
    "FeatureSchema",
    "Figures",
    "Forbidden",
    "Guard",
    "InputError",
    "LiveBook",
    "LiveFigures",
    "MisdirectedHost",
    "ModelFailed",
    "ModelNotFound",
    "ModelService",
    "OutOfRange",
    "PayloadTooLarge",
    "PredictionLogger",
    "Route",
    "Routing",
    "ServeError",
    "ServeMetrics",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "Verdict",
    "create_app",
    "ensure_token",
    "host_allowlist",
    "judge",
    "load_deployment",
    "read_token",
    "resolve_factory",
    "serve",
    "token_path",
]
