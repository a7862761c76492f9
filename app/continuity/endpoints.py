"""The visitor's HTTP way to delete a continuity code (the code in the body, never the URL)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from app.abuse.ratelimit import Limit, tag_of
from app.chats.frames import ContinuityCode
from app.deps import RuntimeDep
from app.kit import jsonutil
from app.staff.permissions import public
from app.web.origins import origin_allowed

router = APIRouter(prefix="/api/visitor/continuity", tags=["visitor"])


class DeleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ContinuityCode


def _answer(status: int, body: dict[str, str]) -> Response:
    return Response(jsonutil.dumpb(body), status_code=status, media_type="application/json")


@router.post("/delete", dependencies=[public(embedding_sites=True)])
async def delete_code(request: Request, runtime: RuntimeDep) -> Response:
    """Delete a continuity code. The answer is the same whether the code existed or not."""
    if not origin_allowed(request.headers.get("origin"), runtime.settings.visitor_origins):
        return _answer(403, {"detail": "origin not allowed"})
    raw = await request.body()
    try:
        body = DeleteRequest.model_validate(jsonutil.loads(raw) if raw.strip() else {})
    except jsonutil.JSONDecodeError:
        return _answer(422, {"detail": "the body is not valid JSON"})
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _answer(422, {"detail": f"invalid field '{where}': {first['msg']}"})
    tag = tag_of(request.scope)
    settings = runtime.settings
    limit = Limit(settings.continuity_attempts, settings.continuity_attempt_window_seconds)
    if tag is not None and not await runtime.rate_limiter.allow("code", tag, limit):
        return _answer(429, {"detail": "too many code attempts; try again in a few minutes"})
    await runtime.continuity.delete(body.code)
    return _answer(200, {"status": "deleted"})
