"""What each frame from a staff member does: a table from frame type to handler.

Who may send which frame is the permission table's business (app/staff/permissions.py,
checked by the socket before a handler runs); a handler checks the chat and answers with a
frame, or with the error the socket reports.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from app.audit.service import AuditAction
from app.broker.base import CHAT_MAX_LIFETIME, BrokerUnavailableError
from app.broker.records import ChatState, StaffStatus
from app.care.service import asked_key, debrief_service, transcript_key
from app.chats.care import SHIFT_TALLY_SECONDS, RiskLevel, Tally, shift_start
from app.chats.channels import chat_channel
from app.chats.frames import (
    AcceptInterpreting,
    AcceptOffer,
    AskDebrief,
    AskSupervisor,
    BlockVisitor,
    CareReady,
    DeclineInterpreting,
    DeclineOffer,
    LeaveInterpreting,
    ListDebriefs,
    ListLive,
    ListTeam,
    Observe,
    OfferContinuity,
    OfferTimes,
    OpenDebrief,
    Ping,
    RemoveInterpreter,
    RequestInterpreter,
    SendReferral,
    SetRisk,
    SetStatus,
    ShiftSoFar,
    StaffEnd,
    StaffMessage,
    StaffNote,
    StaffTyping,
    SyncChat,
    TakeNext,
    TakeOver,
    TransferChat,
    TransferOptions,
    Unobserve,
    Whisper,
    Wrapup,
)
from app.chats.plan import Frame
from app.chats.protocol import ErrorCode, ProtocolError
from app.chats.summaries import live_summary
from app.directory.chats import send_referral
from app.kit.db import unit_of_work
from app.staff.permissions import FRAME_RULES, Permission

if TYPE_CHECKING:
    from app.chats.staff_ws import StaffSocket

Problem = ProtocolError | None

logger = logging.getLogger(__name__)


async def message(sock: StaffSocket, frame: StaffMessage) -> Problem:
    chat_id = frame.chat_id
    write = sock.rt.chats.messages.staff_message
    if chat_id in sock.interpreting or (
        chat_id not in sock.chats and Permission.interpret in sock.grants
    ):
        write = sock.rt.chats.interpreters.message
    result = await write(
        sock.staff,
        chat_id,
        frame.text,
        frame.client_id,
        last_seq=sock.last_seq(chat_id),
        origin=sock.id,
        # Known for a chat it follows: no round trip to read the chat's record.
        line_key=sock.chats.get(chat_id) or sock.interpreting.get(chat_id),
    )
    if isinstance(result, ProtocolError):
        return result
    seq, duplicate = result
    sock.acked[chat_id] = max(sock.acked.get(chat_id, 0), seq)
    ack: Frame = {"type": "message.ack", "chat_id": chat_id, "seq": seq, "duplicate": duplicate}
    if frame.client_id is not None:
        ack["client_id"] = frame.client_id
    sock.out.frame(ack)
    return None


async def typing(sock: StaffSocket, frame: StaffTyping) -> Problem:
    if frame.chat_id in sock.interpreting:
        return None  # the visitor is shown the counsellor's typing only
    if not sock.not_in_chat(frame.chat_id, "typing"):
        await sock.rt.chats.messages.typing(frame.chat_id, "counsellor", frame.typing, sock.id)
    return None


async def ping(sock: StaffSocket, frame: Ping) -> Problem:
    sock.out.frame({"type": "pong"})
    return None


async def status(sock: StaffSocket, frame: SetStatus) -> Problem:
    await sock.rt.chats.staffing.set_status(sock.staff, StaffStatus(frame.status))
    return None


async def accept(sock: StaffSocket, frame: AcceptOffer) -> Problem:
    staff = sock.staff
    accepted = await sock.rt.chats.offers.accept(staff.id, staff.alias, frame.chat_id)
    if isinstance(accepted, ProtocolError):
        return accepted
    await sock.audit(AuditAction.offer_accepted, chat_id=frame.chat_id, line=accepted.line)
    return None


async def take(sock: StaffSocket, frame: TakeNext) -> Problem:
    taken = await sock.rt.chats.taking.take_next(sock.staff, frame.line)
    if isinstance(taken, ProtocolError):
        return taken
    sock.out.frame({"type": "taken", "chat_id": taken.id, "line": taken.line})
    await sock.audit(AuditAction.chat_taken, chat_id=taken.id, line=taken.line)
    return None


async def decline(sock: StaffSocket, frame: DeclineOffer) -> Problem:
    return await sock.rt.chats.offers.decline(sock.staff, frame.chat_id)


async def note(sock: StaffSocket, frame: StaffNote) -> Problem:
    noted = await sock.rt.chats.messages.note(sock.staff, frame.chat_id, frame.text)
    return noted if isinstance(noted, ProtocolError) else None


async def sync(sock: StaffSocket, frame: SyncChat) -> Problem:
    # An ended chat of theirs can be read again while its line keeps transcripts.
    joined = sock.interpreting_since.get(frame.chat_id)
    if joined is not None:
        # An interpreter reads from their join on, however far back they ask.
        sock.out.sync(frame.chat_id, max(frame.last_seq, joined - 1))
        sock.out.frame({"type": "synced", "chat_id": frame.chat_id})
    elif (
        frame.chat_id in sock.chats
        or frame.chat_id in sock.observing
        or await sock.rt.chats.messages.can_review(sock.staff, frame.chat_id)
    ):
        sock.out.sync(frame.chat_id, frame.last_seq)
        sock.out.frame({"type": "synced", "chat_id": frame.chat_id})
    else:
        sock.not_in_chat(frame.chat_id, "sync")
    return None


async def transfer(sock: StaffSocket, frame: TransferChat) -> Problem:
    moved = await sock.rt.chats.offers.transfer(
        sock.staff, frame.chat_id, to_line=frame.line, to_staff=frame.staff_id, note=frame.note
    )
    if isinstance(moved, ProtocolError):
        return moved
    await sock.audit(
        AuditAction.chat_transferred,
        chat_id=frame.chat_id,
        line=moved.line,
        detail={"to_line": frame.line} if frame.line else {"to_staff": frame.staff_id},
    )
    return None


async def end(sock: StaffSocket, frame: StaffEnd) -> Problem:
    return await sock.rt.chats.lifecycle.staff_end(sock.staff, frame.chat_id)


async def block(sock: StaffSocket, frame: BlockVisitor) -> Problem:
    until = await sock.rt.chats.lifecycle.block(sock.staff, frame.chat_id)
    if isinstance(until, ProtocolError):
        return until
    sock.out.frame({"type": "blocked", "chat_id": frame.chat_id, "until": until})
    # Who blocked which chat, never whom: the visitor's keyed hash stays out.
    await sock.audit(AuditAction.chat_blocked, chat_id=frame.chat_id)
    return None


async def offer_continuity(sock: StaffSocket, frame: OfferContinuity) -> Problem:
    offered = await sock.rt.continuity.offer(sock.staff, frame.chat_id, frame.note)
    return offered if isinstance(offered, ProtocolError) else None


async def offer_times(sock: StaffSocket, frame: OfferTimes) -> Problem:
    line = await sock.rt.continuity.offer_times(sock.staff, frame.chat_id, list(frame.times))
    if isinstance(line, ProtocolError):
        return line
    await sock.audit(AuditAction.chat_times_offered, chat_id=frame.chat_id, line=line)
    return None


async def referral(sock: StaffSocket, frame: SendReferral) -> Problem:
    sent = await send_referral(
        sock.rt.chats, sock.rt.sessionmaker, sock.staff, frame.chat_id, frame.service_id
    )
    return sent if isinstance(sent, ProtocolError) else None


async def ask_supervisor(sock: StaffSocket, frame: AskSupervisor) -> Problem:
    asked = await sock.supervision.ask_for_help(sock.staff, frame.chat_id, frame.text)
    if isinstance(asked, ProtocolError):
        return asked
    record, told = asked
    sock.out.frame({"type": "help.sent", "chat_id": frame.chat_id, "supervisors": told})
    # Who asked about which chat; what they wrote stays out of the log.
    await sock.audit(
        AuditAction.help_requested,
        chat_id=frame.chat_id,
        line=record.line,
        detail={"supervisors": told},
    )
    return None


async def transfer_options(sock: StaffSocket, frame: TransferOptions) -> Problem:
    options = await sock.rt.chats.offers.transfer_options(sock.staff, frame.chat_id)
    if isinstance(options, ProtocolError):
        return options
    sock.out.frame({"type": "transfer.options", **options})
    return None


async def wrapup(sock: StaffSocket, frame: Wrapup) -> Problem:
    try:
        return await sock.rt.chats.wrapups.wrapup(
            sock.staff, frame.chat_id, list(frame.topics), frame.outcome
        )
    except BrokerUnavailableError:
        # The broker could not hold it: nothing is stored or told, the wrap-up is still
        # owed, and the console may send it again.
        logger.warning("wrap-up not saved", extra={"code": "not_saved"})
        return ProtocolError(
            ErrorCode.not_saved, "the wrap-up could not be saved; send it again", "wrapup"
        )


# Risk and care (docs/risk.md) ------------------------------------------------------------------


async def risk(sock: StaffSocket, frame: SetRisk) -> Problem:
    done = await sock.rt.chats.care.set_risk(sock.staff, frame.chat_id, RiskLevel(frame.level))
    if isinstance(done, ProtocolError):
        return done
    sock.out.frame(done.frame())
    # The level and whom it reached; never a word of the chat.
    detail: dict[str, Any] = {"risk": frame.level, "previous": done.previous}
    if done.ended:
        detail["ended"] = True  # set during the wrap-up
    if frame.level == RiskLevel.acute.value and done.previous != RiskLevel.acute.value:
        detail.update(supervisors=done.supervisors, on_call=done.on_call)
        detail["procedure_shown"] = done.procedure is not None
    await sock.audit(
        AuditAction.risk_set, chat_id=frame.chat_id, line=done.record.line, detail=detail
    )
    return None


async def ready(sock: StaffSocket, frame: CareReady) -> Problem:
    if not await sock.rt.chats.care.ready(sock.staff):
        return ProtocolError(ErrorCode.invalid_state, "you are not pausing", "ready")
    return None


async def shift(sock: StaffSocket, frame: ShiftSoFar) -> Problem:
    care = sock.rt.chats.care
    # The roster's word on the stretch of duty this connection follows (refreshed as the
    # roster changes and as shifts start and end).
    now = time.time()
    since, basis = shift_start(sock.duty, sock.duty_since, sock.duty_began_by, now)
    sock.out.frame(
        {
            "type": "shift",
            **await care.shift(sock.staff.id, since),
            "since": since,
            "basis": basis.value,
            "hours": SHIFT_TALLY_SECONDS // 3600,
            "on_duty": any(until > now for until in sock.duty.values()),
            "paused_until": await care.paused_until(sock.staff.id),
        }
    )
    return None


async def debrief(sock: StaffSocket, frame: AskDebrief) -> Problem:
    rt = sock.rt
    record = await rt.broker.get_chat(frame.chat_id)
    # Only one's own chat, ended or not (an ended one is kept a while for its wrap-up).
    if record is None or sock.staff.id not in (record.counsellor_id, record.wrapup_by):
        return ProtocolError(ErrorCode.not_in_chat, "this is not one of your chats", "debrief")
    now = rt.broker.now()
    if not await rt.broker.set_value_if_absent(asked_key(record.id), "1", CHAT_MAX_LIFETIME):
        sock.out.frame({"type": "debrief.asked", "chat_id": record.id, "again": True})
        return None
    try:
        # Held with the chat's other rows until its hour's batch (app/care/service.py).
        row = await debrief_service.ask(
            rt.held_rows,
            line=record.line,
            ended_at=record.ended_at or now,
            risk=record.risk or RiskLevel.none.value,
            staff_id=sock.staff.id,
        )
    except BrokerUnavailableError:
        with contextlib.suppress(BrokerUnavailableError):
            await rt.broker.delete_value(asked_key(record.id))
        logger.warning("debrief not saved", extra={"code": "not_saved"})
        return ProtocolError(ErrorCode.not_saved, "the request could not be saved", "debrief")
    # The way to the transcript lives only as long as the line keeps it.
    kept = (record.shred_at or 0.0) - now if record.state is ChatState.ended else None
    if kept is None or kept > 0:
        ttl = kept if kept is not None else CHAT_MAX_LIFETIME
        await rt.broker.set_value(transcript_key(row.id), record.id, ttl)
    await rt.chats.care.count(Tally.debriefs, sock.staff.id)
    sock.out.frame({"type": "debrief.asked", "chat_id": record.id, "again": False})
    await sock.audit(AuditAction.debrief_asked, chat_id=record.id, line=record.line)
    return None


async def debriefs(sock: StaffSocket, frame: ListDebriefs) -> Problem:
    rt = sock.rt
    async with unit_of_work(rt.sessionmaker) as session:
        listing = await debrief_service.listing(session, rt.held_rows, set(sock.duty))
    for item in listing:
        item["transcript"] = await _debrief_transcript(sock, item["id"]) is not None
    sock.out.frame({"type": "debriefs", "debriefs": listing})
    return None


async def _debrief_transcript(sock: StaffSocket, debrief_id: str) -> str | None:
    """The chat whose transcript a debrief may still open, while its line keeps it."""
    chat_id = await sock.rt.broker.get_value(transcript_key(debrief_id))
    if chat_id is None:
        return None
    record = await sock.rt.broker.get_chat(chat_id)
    if record is None or (
        record.state is ChatState.ended
        and (record.shred_at is None or record.shred_at <= sock.rt.broker.now())
    ):
        return None
    return chat_id


async def open_debrief(sock: StaffSocket, frame: OpenDebrief) -> Problem:
    async with unit_of_work(sock.rt.sessionmaker) as session:
        found = await debrief_service.find(session, sock.rt.held_rows, frame.debrief_id)
    if found is None or found.line_key not in sock.duty:
        return ProtocolError(
            ErrorCode.not_in_chat, "there is no such debrief on your lines", "debrief.open"
        )
    chat_id = await _debrief_transcript(sock, frame.debrief_id)
    if chat_id is None:
        return ProtocolError(
            ErrorCode.chat_ended, "the line no longer keeps this transcript", "debrief.open"
        )
    sock.out.frame({"type": "debrief.opened", "id": frame.debrief_id, "chat_id": chat_id})
    sock.out.sync(chat_id, 0)
    sock.out.frame({"type": "synced", "chat_id": chat_id})
    await sock.audit(AuditAction.debrief_opened, chat_id=chat_id, line=found.line_key)
    return None


# Supervisors: the chat must be live and on one of the supervisor's lines ----------------------


async def team(sock: StaffSocket, frame: ListTeam) -> Problem:
    sock.out.frame({"type": "team", "staff": await sock.supervision.team(set(sock.duty))})
    return None


async def live(sock: StaffSocket, frame: ListLive) -> Problem:
    now = sock.rt.broker.now()
    records = await sock.supervision.live(set(sock.duty))
    sock.out.frame(
        {
            "type": "live.chats",
            "chats": [live_summary(r, now, r.id in sock.observing) for r in records],
        }
    )
    return None


async def unobserve(sock: StaffSocket, frame: Unobserve) -> Problem:
    if await sock.unobserve(frame.chat_id):
        sock.out.frame({"type": "chat.unobserved", "chat_id": frame.chat_id})
        return None
    sock.out.frame(
        ProtocolError(ErrorCode.not_in_chat, "you are not observing this chat", "unobserve").frame()
    )
    return None


async def observe(sock: StaffSocket, frame: Observe) -> Problem:
    chat_id = frame.chat_id
    record = await sock.supervision.observable(set(sock.duty), chat_id, "observe")
    if isinstance(record, ProtocolError):
        return record
    if record.counsellor_id == sock.staff.id or chat_id in sock.chats:
        return ProtocolError(ErrorCode.invalid_state, "you are answering this chat", "observe")
    if chat_id in sock.observing:
        return None
    sock.out.frame({"type": "chat.observing", **live_summary(record, sock.rt.broker.now(), True)})
    # The whole transcript, from the first entry: what arrives live meanwhile fills from
    # here, and the catch-up after subscribing (so that nothing stored before the
    # subscription took effect is missed) sends the rest.
    sock.out.delivery.start(chat_id, 0)
    sock.observing[chat_id] = record.line
    await sock.rt.broker.subscribe(chat_channel(chat_id), sock.out.event)
    sock.out.catch_up(chat_id)
    await sock.audit(AuditAction.chat_observed, chat_id=chat_id, line=record.line)
    return None


async def whisper(sock: StaffSocket, frame: Whisper) -> Problem:
    whispered = await sock.supervision.whisper(
        sock.staff, set(sock.duty), frame.chat_id, frame.text
    )
    if isinstance(whispered, ProtocolError):
        return whispered
    sock.out.frame({"type": "whisper.ack", "chat_id": frame.chat_id, "seq": whispered.last_seq})
    await sock.audit(AuditAction.chat_whispered, chat_id=frame.chat_id, line=whispered.line)
    return None


async def take_over(sock: StaffSocket, frame: TakeOver) -> Problem:
    taken = await sock.supervision.take_over(sock.staff, set(sock.duty), frame.chat_id)
    if isinstance(taken, ProtocolError):
        return taken
    await sock.audit(AuditAction.chat_taken_over, chat_id=frame.chat_id, line=taken.line)
    return None


# Interpreters ---------------------------------------------------------------------------------


async def request_interpreter(sock: StaffSocket, frame: RequestInterpreter) -> Problem:
    asked = await sock.rt.chats.interpreters.request(sock.staff, frame.chat_id, frame.language)
    if isinstance(asked, ProtocolError):
        return asked
    language = asked.interpreter_language
    sock.out.frame({"type": "interpreter.asked", "chat_id": frame.chat_id, "language": language})
    await sock.audit(
        AuditAction.interpreter_requested,
        chat_id=frame.chat_id,
        line=asked.line,
        detail={"language": language},
    )
    return None


async def remove_interpreter(sock: StaffSocket, frame: RemoveInterpreter) -> Problem:
    removed = await sock.rt.chats.interpreters.remove(sock.staff, frame.chat_id)
    if isinstance(removed, ProtocolError):
        return removed
    record, interpreter_id = removed
    await sock.audit(
        AuditAction.interpreter_left,
        chat_id=frame.chat_id,
        line=record.line,
        detail={"reason": "removed", "interpreter": interpreter_id},
    )
    return None


async def accept_interpreting(sock: StaffSocket, frame: AcceptInterpreting) -> Problem:
    joined = await sock.rt.chats.interpreters.accept(sock.staff, frame.chat_id)
    if isinstance(joined, ProtocolError):
        return joined
    record, seq = joined
    await sock.interpret(record, seq)
    await sock.audit(
        AuditAction.interpreter_joined,
        chat_id=frame.chat_id,
        line=record.line,
        detail={"language": record.interpreter_language},
    )
    return None


async def decline_interpreting(sock: StaffSocket, frame: DeclineInterpreting) -> Problem:
    return await sock.rt.chats.interpreters.decline(sock.staff, frame.chat_id)


async def leave_interpreting(sock: StaffSocket, frame: LeaveInterpreting) -> Problem:
    left = await sock.rt.chats.interpreters.leave(
        sock.staff.id, frame.chat_id, "left", "interpreter.leave"
    )
    if isinstance(left, ProtocolError):
        return ProtocolError(ErrorCode.not_in_chat, "you are not in this chat", left.ref)
    await sock.audit(
        AuditAction.interpreter_left,
        chat_id=frame.chat_id,
        line=left.line,
        detail={"reason": "left"},
    )
    return None


class Refusals:
    """Naming a chat that is not yours, or doing what your role does not allow, is audited a
    few times a minute per connection (a flood of probes must not flood the log)."""

    PER_MINUTE = 10

    def __init__(self) -> None:
        self._pending: list[tuple[str | None, dict[str, Any]]] = []
        self._count = 0
        self._window = time.monotonic()

    def add(self, kind: str, chat_id: str | None, code: ErrorCode) -> None:
        detail: dict[str, Any] = {"frame": kind, "code": code.value}
        if code is ErrorCode.forbidden and chat_id is None:
            detail["permission"] = FRAME_RULES[kind].value
        self._pending.append((chat_id, detail))

    def take(self) -> list[tuple[str | None, dict[str, Any]]]:
        """The refusals to audit now: (chat id, detail), within this minute's allowance."""
        pending, self._pending = self._pending, []
        now = time.monotonic()
        if now - self._window > 60:
            self._window, self._count = now, 0
        allowed = max(0, min(len(pending), self.PER_MINUTE - self._count))
        self._count += allowed
        return pending[:allowed]


Handler = Callable[["StaffSocket", Any], Awaitable[Problem]]

HANDLERS: dict[type[Any], Handler] = {
    StaffMessage: message,
    StaffTyping: typing,
    Ping: ping,
    SetStatus: status,
    AcceptOffer: accept,
    TakeNext: take,
    DeclineOffer: decline,
    StaffNote: note,
    SyncChat: sync,
    TransferChat: transfer,
    StaffEnd: end,
    BlockVisitor: block,
    OfferContinuity: offer_continuity,
    OfferTimes: offer_times,
    SendReferral: referral,
    AskSupervisor: ask_supervisor,
    TransferOptions: transfer_options,
    Wrapup: wrapup,
    ListTeam: team,
    ListLive: live,
    Unobserve: unobserve,
    Observe: observe,
    Whisper: whisper,
    TakeOver: take_over,
    RequestInterpreter: request_interpreter,
    RemoveInterpreter: remove_interpreter,
    AcceptInterpreting: accept_interpreting,
    DeclineInterpreting: decline_interpreting,
    LeaveInterpreting: leave_interpreting,
    SetRisk: risk,
    CareReady: ready,
    ShiftSoFar: shift,
    AskDebrief: debrief,
    ListDebriefs: debriefs,
    OpenDebrief: open_debrief,
}

# Supervisors' frames: a refusal is audited when it is about a line that is not theirs; for
# the others, when it names a chat that is not the counsellor's.
SUPERVISING = frozenset(
    {ListTeam, ListLive, Unobserve, Observe, Whisper, TakeOver, ListDebriefs, OpenDebrief}
)
