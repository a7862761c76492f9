"""Booked chats over HTTP: the visitor picks an offered time with their code (in the body,
never the URL); a counsellor lists their booked chats of today."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from app.abuse.visitor_requests import BodyRefusal, json_answer, visitor_code_body
from app.bookings.service import BookingError, booking_service, iso
from app.chats.frames import ContinuityCode
from app.deps import RuntimeDep, SessionDep
from app.kit.clock import utcnow
from app.kit.fields import Moment
from app.staff.permissions import TakeChats, public

visitor_router = APIRouter(prefix="/api/visitor/bookings", tags=["visitor"])
router = APIRouter(prefix="/api/bookings", tags=["bookings"])

NO_BOOKING = "no times were offered for this code"


class PickRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: ContinuityCode
    time: Moment


@visitor_router.post("/pick", dependencies=[public(embedding_sites=True)])
async def pick(request: Request, runtime: RuntimeDep) -> Response:
    """Book one of the times the counsellor offered. A wrong, unknown or deleted code, or
    one without offered times, gets one answer, after the same work."""
    body = await visitor_code_body(request, runtime, PickRequest)
    if isinstance(body, BodyRefusal):
        return body.answer(with_code=False)
    try:
        booked = await runtime.continuity.pick(body.code, body.time)
    except BookingError as exc:
        return json_answer(exc.status, {"detail": exc.message, "code": exc.code})
    if not booked:
        return json_answer(404, {"detail": NO_BOOKING, "code": "no_booking"})
    return json_answer(200, {"status": "booked", "time": iso(body.time)})


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
