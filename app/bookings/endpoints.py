"""Booked chats over HTTP: the visitor picks an offered time with their code (in the body,
never the URL); a counsellor lists their booked chats of today."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from app.abuse.ratelimit import Limit, tag_of
from app.bookings.service import BookingError, booking_service, iso
from app.chats.frames import ContinuityCode
from app.deps import RuntimeDep, SessionDep
from app.kit import jsonutil
from app.kit.clock import utcnow
from app.kit.fields import Moment
from app.staff.permissions import TakeChats, public
from app.web.origins import origin_allowed

visitor_router = APIRouter(prefix="/api/visitor/bookings", tags=["visitor"])
router = APIRouter(prefix="/api/bookings", tags=["bookings"])

NO_BOOKING = "no times were offered for this code"


class PickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ContinuityCode
    time: Moment


def _answer(status: int, body: dict[str, str]) -> Response:
    return Response(jsonutil.dumpb(body), status_code=status, media_type="application/json")


@visitor_router.post("/pick", dependencies=[public(embedding_sites=True)])
async def pick(request: Request, runtime: RuntimeDep) -> Response:
    """Book one of the times the counsellor offered. A wrong, unknown or deleted code, or
    one without offered times, gets one answer, after the same work."""
    if not origin_allowed(request.headers.get("origin"), runtime.settings.visitor_origins):
        return _answer(403, {"detail": "origin not allowed"})
    raw = await request.body()
    try:
        body = PickRequest.model_validate(jsonutil.loads(raw) if raw.strip() else {})
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
    try:
        booked = await runtime.continuity.pick(body.code, body.time)
    except BookingError as exc:
        return _answer(exc.status, {"detail": exc.message, "code": exc.code})
    if not booked:
        return _answer(404, {"detail": NO_BOOKING, "code": "no_booking"})
    return _answer(200, {"status": "booked", "time": iso(body.time)})


@router.get("/today")
async def today(staff: TakeChats, session: SessionDep) -> dict[str, object]:
    """The counsellor's booked chats today (nothing about the visitors: there is nothing)."""
    rows = await booking_service.today(session, staff.id, utcnow())
    return {
        "bookings": [
            {
                "id": str(booking.id),
                "line": booking.line_key,
                "line_name": name,
                # The console shows the time on the line's clock, as the roster does.
                "time_zone": zone,
                "starts_at": iso(booking.starts_at),
                "arrived": booking.arrived,
            }
            for booking, name, zone in rows
        ]
    }
