"""The visitor's HTTP requests with a JSON body: the page's origin, the body read into its model
(whatever the content type, so that sendBeacon and plain forms work), and the client's code
attempts (bucket "code", shared by continuity, booking and mailbox codes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from app.abuse.ratelimit import Limit, tag_of
from app.kit import jsonutil
from app.web.origins import origin_allowed

if TYPE_CHECKING:
    from app.runtime import Runtime

B = TypeVar("B", bound=BaseModel)


def json_answer(status: int, body: dict[str, Any]) -> Response:
    return Response(jsonutil.dumpb(body), status_code=status, media_type="application/json")


@dataclass(frozen=True, slots=True)
class BodyRefusal:
    status: int
    detail: str
    code: str

    def answer(self, *, with_code: bool = True) -> Response:
        """The refusal as JSON; `with_code=False` for endpoints that answer a sentence only."""
        body = {"detail": self.detail, "code": self.code} if with_code else {"detail": self.detail}
        return json_answer(self.status, body)


TOO_MANY_CODES = BodyRefusal(
    429, "too many code attempts; try again in a few minutes", "too_many_attempts"
)


async def visitor_body(request: Request, runtime: Runtime, model: type[B]) -> B | BodyRefusal:
    """The request's body as `model`, or why not (a foreign origin, not JSON, invalid)."""
    if not origin_allowed(request.headers.get("origin"), runtime.settings.visitor_origins):
        return BodyRefusal(403, "origin not allowed", "origin")
    raw = await request.body()
    try:
        return model.model_validate(jsonutil.loads(raw) if raw.strip() else {})
    except jsonutil.JSONDecodeError:
        return BodyRefusal(422, "the body is not valid JSON", "invalid_json")
    except ValidationError as exc:
        # Where and why, never the value (it may be a code or the visitor's words).
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return BodyRefusal(422, f"invalid field '{where}': {first['msg']}", "invalid")


async def allowed(request: Request, runtime: Runtime, bucket: str, limit: Limit) -> bool:
    """Whether the client may go on (a client without a hash is not counted)."""
    tag = tag_of(request.scope)
    return tag is None or await runtime.rate_limiter.allow(bucket, tag, limit)


async def visitor_code_body(request: Request, runtime: Runtime, model: type[B]) -> B | BodyRefusal:
    """As `visitor_body`, for a body that presents a code: it counts as one code attempt."""
    body = await visitor_body(request, runtime, model)
    if isinstance(body, BodyRefusal):
        return body
    settings = runtime.settings
    limit = Limit(settings.continuity_attempts, settings.continuity_attempt_window_seconds)
    if not await allowed(request, runtime, "code", limit):
        return TOO_MANY_CODES
    return body
