"""The model server: a factory's champion over Open Inference Protocol v2 (HTTP), with a prediction log,
Prometheus metrics and an admin API (promote, rollback, pause, resume) behind a bearer token."""

from __future__ import annotations

from ._app import DEFAULT_MAX_BODY, BodyLimit, create_app
from ._errors import (
    BadRequest,
    Conflict,
    InputError,
    ModelNotFound,
    PayloadTooLarge,
    ServeError,
    Unauthorized,
    Unavailable,
)
from ._inputs import FeatureSchema
from ._log import PredictionLogger
from ._metrics import ServeMetrics
from ._run import DEFAULT_HOST, DEFAULT_PORT, resolve_factory, serve
from ._service import Deployment, ModelService, load_deployment
from ._token import TOKEN_FILE, ensure_token, read_token, token_path

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY",
    "DEFAULT_PORT",
    "TOKEN_FILE",
    "BadRequest",
    "BodyLimit",
    "Conflict",
    "Deployment",
    "FeatureSchema",
    "InputError",
    "ModelNotFound",
    "ModelService",
    "PayloadTooLarge",
    "PredictionLogger",
    "ServeError",
    "ServeMetrics",
    "Unauthorized",
    "Unavailable",
    "create_app",
    "ensure_token",
    "load_deployment",
    "read_token",
    "resolve_factory",
    "serve",
    "token_path",
]
