"""Risk and care (docs/risk.md): the visitor's "I am in danger right now", the counsellor's
risk level on a chat with the alerts an acute one sends, the pause after an acute chat, and
the counsellor's shift so far.

Everything here lives in the broker (shared by every process on Redis): the chat's record
carries `risk` and `in_danger`, the counsellor's presence `paused_until`; alerts go out on
staff channels. Nothing here holds or logs content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from app.broker.base import CHAT_MAX_LIFETIME, Refusal, Transition
from app.broker.records import (
    PRIORITY_IN_DANGER,
    ChatRecord,
    ChatState,
    queue_score,
)
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.core import ChatPart, err
from app.chats.protocol import ErrorCode, ProtocolError
from app.staff.service import StaffContext

_ENDED = frozenset({ChatState.ended})

# The shift so far: what a counsellor did since their stretch of duty began, looking back at
# most this many seconds (and this far when they are not on duty); the times are kept in the
# broker this long, at most SHIFT_TALLY_KEEP of each kind.
SHIFT_TALLY_SECONDS = 12 * 3600
SHIFT_TALLY_KEEP = 200


class ShiftBasis(StrEnum):
    """What "the shift so far" counts from."""

    shift = "shift"  # the start of the roster shift the counsellor is on duty by
    ad_hoc = "ad_hoc"  # when a coordinator put them on duty outside the roster
    hours = "hours"  # the last SHIFT_TALLY_SECONDS: off duty, or on duty for longer than that


def shift_start(
    until: Mapping[str, float], since: Mapping[str, float], began_by: Mapping[str, str], now: float
) -> tuple[float, ShiftBasis]:
    """Since when the shift so far counts, and why: the start of the stretch of duty the
    counsellor is in now (the earliest of their lines on duty now), within the last
    SHIFT_TALLY_SECONDS; else those seconds."""
    started = [
        (since[key], ShiftBasis(began_by.get(key, ShiftBasis.shift.value)))
        for key, end in until.items()
        if end > now and since.get(key)
    ]
    if started:
        start, basis = min(started)
        if start >= now - SHIFT_TALLY_SECONDS:
            return start, basis
    return now - SHIFT_TALLY_SECONDS, ShiftBasis.hours


class RiskLevel(StrEnum):
    none = "none"
    concern = "concern"
    acute = "acute"


class Tally(StrEnum):
    """What the counsellor's home view counts of their shift so far."""

    chats = "chats"
    acute = "acute"
    debriefs = "debriefs"


def tally_key(kind: Tally, staff_id: str) -> str:
    return f"shift:{kind.value}:{staff_id}"


def acute_key(chat_id: str) -> str:
    """Set once per chat when it counts as an acute chat over (the shift, the pause)."""
    return f"acute-over:{chat_id}"


def danger_key(chat_id: str) -> str:
    """Set once per chat, by the first press that counts (across processes)."""
    return f"danger:{chat_id}"


@dataclass(slots=True)
class RiskSet:
    """A risk level set on a chat, and whom an acute one reached."""

    record: ChatRecord
    previous: str
    # Set during the wrap-up, after the chat ended.
    ended: bool = False
    supervisors: int = 0
    on_call: int = 0
    # The line's written procedure and contact, when an acute chat reached nobody.
    procedure: dict[str, str] | None = None
    alerted: list[str] = field(default_factory=list)

    def frame(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "risk.set",
            "chat_id": self.record.id,
            "risk": self.record.risk or RiskLevel.none.value,
            "supervisors": self.supervisors,
            "on_call": self.on_call,
            "ended": self.ended,
        }
        if self.procedure is not None:
            out["procedure"] = self.procedure
        return out


class Care(ChatPart):
    # The visitor ------------------------------------------------------------------------------

    async def in_danger(self, chat_id: str) -> tuple[ChatRecord, bool] | ProtocolError:
        """The visitor pressed "I am in danger right now": the chat goes ahead of every other
        waiting chat of its line and its counsellor (or the one it is offered to) is told.
        Once per chat: a second press changes nothing. (the chat, whether this press counted)"""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.state is ChatState.ended:
            return err(ErrorCode.chat_ended, "the chat has ended", "danger")
        if record.in_danger or not await self.broker.set_value_if_absent(
            danger_key(chat_id), "1", CHAT_MAX_LIFETIME
        ):
            return record, False
        for _ in range(5):
            waiting = record.waiting and record.visitor_connected
            priority = max(record.priority, PRIORITY_IN_DANGER)
            result = await self.broker.transition(
                chat_id,
                Transition(
                    expect=frozenset({record.state}),
                    changes={"in_danger": True, "priority": priority},
                    # Ahead of ordinary chats, keeping its own time waited among the others.
                    dequeue=waiting,
                    enqueue=queue_score(priority, record.queued_at) if waiting else None,
                ),
            )
            if not isinstance(result, Refusal):
                break
            fresh = await self.broker.get_chat(chat_id)
            if fresh is None or fresh.state is ChatState.ended:
                return err(ErrorCode.chat_ended, "the chat has ended", "danger")
            record = fresh
        else:
            return err(ErrorCode.invalid_state, "the chat changed meanwhile; press again", "danger")
        told = result.counsellor_id if result.state is ChatState.active else result.offered_to
        if told:
            await self.broker.publish(
                staff_channel(told),
                {"type": "chat.in_danger", "chat_id": chat_id, "line": result.line},
            )
        if result.waiting:
            await self.core.queue_changed(result.line)
        return result, True

    def emergency_text(self, line_key: str, language: str) -> str:
        line = self.lines.get(line_key)
        return line.text(line.emergency_text, language) if line else ""

    # The counsellor ---------------------------------------------------------------------------

    async def set_risk(
        self, staff: StaffContext, chat_id: str, level: RiskLevel
    ) -> RiskSet | ProtocolError:
        """The counsellor's risk level on their own active chat, or on their own ended chat
        while its wrap-up is due from them; acute alerts supervisors either way."""
        record = await self.broker.get_chat(chat_id)
        if record is None:
            return err(
                ErrorCode.not_in_chat,
                "no chat of yours that is open or awaiting its wrap-up has this id",
                "risk",
            )
        if record.state is ChatState.ended:
            return await self._set_risk_in_wrapup(staff, record, level)
        if record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not answering this chat", "risk")
        if record.state is not ChatState.active:
            return err(ErrorCode.invalid_state, f"the chat is {record.state.value}", "risk")
        previous = record.risk or RiskLevel.none.value
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=staff.id,
                changes={"risk": level.value},
            ),
        )
        if isinstance(result, Refusal):
            if result is Refusal.state:
                # It ended meanwhile: its wrap-up may take the level.
                fresh = await self.broker.get_chat(chat_id)
                if fresh is not None and fresh.state is ChatState.ended:
                    return await self._set_risk_in_wrapup(staff, fresh, level)
            return err(ErrorCode.not_in_chat, "the chat changed meanwhile", "risk")
        return await self._risk_set(staff, RiskSet(result, previous), level)

    async def _set_risk_in_wrapup(
        self, staff: StaffContext, record: ChatRecord, level: RiskLevel
    ) -> RiskSet | ProtocolError:
        """After the end, until the wrap-up is saved: the counsellor often judges the risk
        only once the visitor has gone. The wrap-up row takes the level (app/chats/wrapups.py),
        and acute alerts as in a live chat, so a supervisor knows in time for a debrief."""
        if record.wrapup_by != staff.id:
            if record.counsellor_id == staff.id:
                return err(
                    ErrorCode.invalid_state,
                    "the chat has ended and its wrap-up is not due from you (any more)",
                    "risk",
                )
            return err(ErrorCode.not_in_chat, "you are not answering this chat", "risk")
        previous = record.risk or RiskLevel.none.value
        result = await self.broker.transition(
            record.id, Transition(expect=_ENDED, changes={"risk": level.value})
        )
        if isinstance(result, Refusal):
            return err(ErrorCode.not_in_chat, "you owe no wrap-up for this chat", "risk")
        if result.wrapup_by != staff.id:
            # The wrap-up was saved (with the level before) between our read and this
            # change: the record goes back to what the saved wrap-up says.
            await self.broker.transition(
                record.id,
                Transition(expect=_ENDED, changes={"risk": record.risk}),
            )
            return err(
                ErrorCode.invalid_state,
                "the chat has ended and its wrap-up is not due from you (any more)",
                "risk",
            )
        done = await self._risk_set(staff, RiskSet(result, previous, ended=True), level)
        if level is RiskLevel.acute and previous != RiskLevel.acute.value:
            await self._after_acute(staff.id, result)
        return done

    async def _risk_set(self, staff: StaffContext, done: RiskSet, level: RiskLevel) -> RiskSet:
        # Every tab of the counsellor shows it.
        await self.broker.publish(
            staff_channel(staff.id),
            {"type": "chat.risk", "chat_id": done.record.id, "risk": level.value},
        )
        if level is RiskLevel.acute and done.previous != RiskLevel.acute.value:
            await self._alert(staff, done.record, done)
        return done

    async def _alert(self, staff: StaffContext, record: ChatRecord, done: RiskSet) -> None:
        """Every on-duty supervisor of the line; with none, its on-call staff who are signed
        in; with nobody, the counsellor reads the line's procedure."""
        now = self.broker.now()
        line = self.lines.get(record.line)
        alert: dict[str, Any] = {
            "type": "risk.alert",
            "chat_id": record.id,
            "line": record.line,
            "line_name": line.name if line else record.line,
            "counsellor": {"id": staff.id, "alias": staff.alias},
            "on_call": False,
            # Set during the wrap-up, after the visitor left: nobody can join the chat now,
            # but a supervisor knows to offer a debrief.
            "ended": record.state is ChatState.ended,
            "at": now,
        }
        for supervisor in await self.router.supervisors_on_duty(record.line, now, besides=staff.id):
            done.supervisors += 1
            done.alerted.append(supervisor)
            await self.broker.publish(staff_channel(supervisor), alert)
        if done.supervisors:
            return
        on_call = [s for s in (line.on_call if line else ()) if s != staff.id]
        counts = await self.broker.connection_counts(on_call) if on_call else {}
        for staff_id in on_call:
            if counts.get(staff_id):
                done.on_call += 1
                done.alerted.append(staff_id)
                await self.broker.publish(staff_channel(staff_id), {**alert, "on_call": True})
        if not done.on_call:
            done.procedure = {
                "text": line.emergency_procedure if line else "",
                "contact": line.emergency_contact if line else "",
            }

    # After the chat ---------------------------------------------------------------------------

    async def chat_ended(self, before: ChatRecord, after: ChatRecord) -> None:
        """Count the chat in its counsellor's shift; after an acute one, their pause begins."""
        staff_id = before.counsellor_id
        if before.state is not ChatState.active or staff_id is None:
            return
        await self.count(Tally.chats, staff_id)
        if after.risk == RiskLevel.acute.value:
            await self._after_acute(staff_id, after)

    async def _after_acute(self, staff_id: str, record: ChatRecord) -> None:
        """An acute chat is over (it ended acute, or was set acute during its wrap-up): it
        counts in the counsellor's shift and their pause begins, once per chat."""
        if not await self.broker.set_value_if_absent(acute_key(record.id), "1", CHAT_MAX_LIFETIME):
            return
        await self.count(Tally.acute, staff_id)
        line = self.lines.get(record.line)
        seconds = line.care_pause_seconds if line else 600
        if seconds <= 0:
            return
        until = self.broker.now() + seconds
        presence = await self.broker.get_presence(staff_id)
        if presence is not None and presence.paused_until >= until:
            return
        if await self.broker.update_presence(staff_id, {"paused_until": until}) is None:
            return
        await self.broker.schedule(deadline_key(Deadline.care_pause, staff_id), until)
        await self.broker.publish(
            staff_channel(staff_id),
            {"type": "care.paused", "until": until, "chat_id": record.id, "seconds": seconds},
        )

    async def ready(self, staff: StaffContext) -> bool:
        """The counsellor is ready before their pause is over: offers reach them again."""
        presence = await self.broker.get_presence(staff.id)
        if presence is None or presence.paused_until <= self.broker.now():
            return False
        await self.broker.cancel(deadline_key(Deadline.care_pause, staff.id))
        await self._resume(staff.id, "ready")
        return True

    async def pause_over(self, staff_id: str) -> None:
        """The pause ran out (a deadline, any process)."""
        presence = await self.broker.get_presence(staff_id)
        if presence is None or presence.paused_until <= 0:
            return
        if presence.paused_until > self.broker.now() + 1:
            # A later pause replaced this one: its own deadline ends it.
            return
        await self._resume(staff_id, "over")

    async def _resume(self, staff_id: str, reason: str) -> None:
        presence = await self.broker.update_presence(staff_id, {"paused_until": 0.0})
        await self.broker.publish(staff_channel(staff_id), {"type": "care.ready", "reason": reason})
        for line in presence.duty if presence else {}:
            self.router.kick(line)

    async def count(self, kind: Tally, staff_id: str) -> None:
        """One more of `kind` in the counsellor's shift (when: the broker's clock, kept in the
        broker only, for SHIFT_TALLY_SECONDS)."""
        await self.broker.push_recent(
            tally_key(kind, staff_id), self.broker.now(), SHIFT_TALLY_KEEP, SHIFT_TALLY_SECONDS
        )

    async def shift(self, staff_id: str, since: float) -> dict[str, int]:
        """The counsellor's shift so far: chats, acute ones, debriefs asked since `since`."""
        out: dict[str, int] = {}
        for kind in Tally:
            times = await self.broker.recent(tally_key(kind, staff_id))
            out[kind.value] = sum(1 for t in times if t >= since)
        return out

    async def paused_until(self, staff_id: str) -> float | None:
        presence = await self.broker.get_presence(staff_id)
        if presence is None or presence.paused_until <= self.broker.now():
            return None
        return presence.paused_until


__all__ = ["Care", "RiskLevel", "RiskSet", "ShiftBasis", "Tally", "shift_start"]
