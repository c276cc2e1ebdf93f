"""Errors the model server answers with: each carries its HTTP status and a message naming the rule.

The tree::

    DarkfabError
    └── ServeError                    answered as {"error": message} with ``status``
        ├── InputError (ValueError)   422: the request breaks the model's input schema or the body's shape
        │   └── OutOfRange            422: a value the model cannot hold, or absurdly far outside training
        ├── BadRequest (ValueError)   400: the body is not JSON, or an admin request is malformed
        ├── Forbidden                 403: a foreign Origin (a web page) on a state-changing request
        ├── MisdirectedHost           421: a Host header not in the allowlist (DNS rebinding)
        ├── UnsupportedMediaType      415: a JSON endpoint sent a body that is not application/json
        ├── Unauthorized              401: no bearer token, or a wrong one
        ├── ModelNotFound (LookupError) 404: a model, version or request id that is not served or logged
        ├── Conflict                  409: an admin action that cannot apply now (nothing to roll back to)
        ├── PayloadTooLarge           413: the body is over the configured limit
        ├── Unavailable               503: serving is paused
        └── ModelFailed               500: the model raised on rows that passed the input checks (recorded)
"""

from __future__ import annotations

from ..errors import DarkfabError


class ServeError(DarkfabError):
    status = 500

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def body(self) -> dict[str, str]:
        out = {"error": self.message}
        if self.field is not None:
            out["field"] = self.field
        return out


class InputError(ServeError, ValueError):
    status = 422


class OutOfRange(InputError):
    status = 422


class BadRequest(ServeError, ValueError):
    status = 400


class Forbidden(ServeError):
    status = 403


class MisdirectedHost(ServeError):
    status = 421


class UnsupportedMediaType(ServeError):
    status = 415


class Unauthorized(ServeError):
    status = 401


class ModelNotFound(ServeError, LookupError):
    status = 404


class Conflict(ServeError):
    status = 409


class PayloadTooLarge(ServeError):
    status = 413


class Unavailable(ServeError):
    status = 503


class ModelFailed(ServeError):
    status = 500
