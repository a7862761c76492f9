"""Refusals: an API error with a stable code, answered as {"detail": ..., "code": ...}; an invalid
request, answered as {"detail": [one problem per field]}; and `Problem`, the one schema the
OpenAPI document gives for both (and for every other refusal: 401, 403, 404, 409, 413, 429)."""

from __future__ import annotations

import math
import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse


class ApiError(Exception):
    """Raise from a service or endpoint; the request's transaction is rolled back."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


async def api_error_response(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)


class FieldProblem(BaseModel):
    """One invalid field of a request."""

    # Where: "body", "query", "path" or "header", then the field's name (and list index).
    loc: list[str | int]
    msg: str
    # Which refusal, e.g. "missing", "string_too_long", "invalid_text" (a NUL or a lone
    # surrogate), "int_type"; `ctx` holds its limits, e.g. {"max_length": 100}.
    type: str
    ctx: dict[str, str | int | float | bool] | None = None


class Problem(BaseModel):
    """A refusal: a sentence (with a stable `code` where one is given), or, for an invalid
    request (422), one problem per invalid field."""

    detail: str | list[FieldProblem]
    code: str | None = None


_REFUSED = (
    "Refused: 401 (not signed in), 403 (not allowed, or no CSRF token), 404, 409, 410, "
    "413 (too large), 422 (invalid), 429 (too many requests, see Retry-After)"
)
# The OpenAPI response that every operation declares for whatever it refuses.
REFUSALS: dict[int | str, dict[str, Any]] = {"default": {"model": Problem, "description": _REFUSED}}
# The same for an operation whose answer is not JSON (FastAPI would give the refusals the
# answer's media type): refusals are JSON all the same.
REFUSALS_IN_JSON: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": _REFUSED,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
}

_SURROGATES = re.compile("[\ud800-\udfff]")


def _printable(value: str) -> str:
    """`value` as it can be sent in UTF-8: a lone surrogate becomes U+FFFD."""
    return _SURROGATES.sub("\ufffd", value)


def _problem(error: Any) -> dict[str, Any]:
    problem: dict[str, Any] = {
        "loc": [part if isinstance(part, int) else _printable(str(part)) for part in error["loc"]],
        "msg": _printable(str(error["msg"])),
        "type": str(error["type"]),
    }
    ctx = error.get("ctx")
    if ctx:
        problem["ctx"] = {str(key): _plain(value) for key, value in ctx.items()}
    return problem


def _plain(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return _printable(str(value))


async def invalid_request_response(_request: Request, exc: Exception) -> JSONResponse:
    """422 with where and why for each invalid field, never the value that was sent (it may be
    a password, or text that cannot even be encoded)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_problem(error) for error in exc.errors()]}, status_code=422)
