"""The visitor's HTTP step: quick exit (the widget calls it as it leaves, e.g. by sendBeacon)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from app.chats.frames import ChatId, ResumeToken
from app.deps import RuntimeDep
from app.kit import jsonutil
from app.staff.permissions import public
from app.web.origins import origin_allowed

router = APIRouter(prefix="/api/visitor", tags=["visitor"])

# Tells the visitor's browser to drop everything it keeps for Lykta's origin.
CLEAR_SITE_DATA = '"cache", "cookies", "storage"'


class ExitRequest(BaseModel):
    """Both fields, or neither (the browser's data is cleared either way)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chat_id: ChatId | None = None
    token: ResumeToken | None = None


def _answer(status: int, body: dict[str, str]) -> Response:
    return Response(
        jsonutil.dumpb(body),
        status_code=status,
        media_type="application/json",
        headers={"Clear-Site-Data": CLEAR_SITE_DATA},
    )


@router.post("/exit", dependencies=[public(embedding_sites=True)])
async def quick_exit(request: Request, runtime: RuntimeDep) -> Response:
    """End the chat and shred its transcript now; the JSON body holds `chat_id` and `token`
    (never the URL, which proxies log). Any content type is read as JSON."""
    if not origin_allowed(request.headers.get("origin"), runtime.settings.visitor_origins):
        return _answer(403, {"detail": "origin not allowed"})
    raw = await request.body()
    try:
        data = jsonutil.loads(raw) if raw.strip() else {}
    except jsonutil.JSONDecodeError:
        return _answer(422, {"detail": "the body is not valid JSON"})
    try:
        body = ExitRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return _answer(422, {"detail": f"invalid field '{where}': {first['msg']}"})
    if (body.chat_id is None) != (body.token is None):
        return _answer(422, {"detail": "give both chat_id and token, or neither"})
    if body.chat_id is None or body.token is None:
        return _answer(200, {"status": "cleared"})
    if not await runtime.chats.lifecycle.exit_with_token(body.chat_id, body.token):
        return _answer(404, {"detail": "no chat matches this id and token"})
    return _answer(200, {"status": "exited"})
