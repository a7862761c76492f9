"""Supervision: a supervisor lists live chats of their lines, observes one silently, whispers
to its counsellor, and takes it over.

Whether someone is a supervisor at all is the permission table's business
(app/staff/permissions.py); this module checks the chat: live, and on one of the
supervisor's lines. A whisper is a staff-only transcript entry (transcript.STAFF_ONLY), so
the visitor never receives it: not live, not on resume, not when a gap is filled.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.broker.base import Refusal, Transition
from app.broker.records import ChatRecord, ChatState
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError, check_text
from app.chats.service import ChatService
from app.routing.policy import on_duty
from app.staff.service import StaffContext

WHISPER_LIMIT = 4000


def _err(code: ErrorCode, message: str, ref: str) -> ProtocolError:
    return ProtocolError(code, message, ref)


class Supervision:
    def __init__(self, chats: ChatService) -> None:
        self._chats = chats
        self._broker = chats.broker

    async def live(self, lines: Collection[str]) -> list[ChatRecord]:
        """Chats of these lines that have not ended (no content: records only)."""
        out: list[ChatRecord] = []
        for line in sorted(lines):
            records = await self._broker.get_chats(await self._broker.line_chat_ids(line))
            out.extend(r for r in records if r.state is not ChatState.ended)
        return out

    async def observable(
        self, lines: Collection[str], chat_id: str, ref: str
    ) -> ChatRecord | ProtocolError:
        record = await self._broker.get_chat(chat_id)
        if record is None:
            return _err(ErrorCode.not_in_chat, "there is no such live chat", ref)
        if record.line not in lines:
            return _err(ErrorCode.forbidden, "this chat is not on one of your lines", ref)
        if record.state is ChatState.ended:
            return _err(ErrorCode.chat_ended, "the chat has ended", ref)
        return record

    async def whisper(
        self, supervisor: StaffContext, lines: Collection[str], chat_id: str, text: str
    ) -> ChatRecord | ProtocolError:
        """A message for the chat's counsellor (and other observers) only; the chat after it."""
        problem = check_text(text, WHISPER_LIMIT)
        if problem is not None:
            return ProtocolError(problem.code, problem.message, "whisper")
        record = await self.observable(lines, chat_id, "whisper")
        if isinstance(record, ProtocolError):
            return record
        if record.state is not ChatState.active:
            return _err(ErrorCode.invalid_state, "nobody is answering this chat yet", "whisper")
        if record.counsellor_id == supervisor.id:
            return _err(ErrorCode.invalid_state, "you are answering this chat", "whisper")
        now = self._broker.now()
        entry = Entry(
            EntryKind.whisper, now, name=supervisor.alias, text=text, staff_id=supervisor.id
        )
        seq, status = await self._chats.transcript.add_one(chat_id, entry, last_seq=record.last_seq)
        if status != "ok":
            return _err(ErrorCode.chat_ended, "the chat has ended", "whisper")
        return record.copy(last_seq=seq)

    async def take_over(
        self, supervisor: StaffContext, lines: Collection[str], chat_id: str
    ) -> ChatRecord | ProtocolError:
        """The supervisor answers the chat from now on; its counsellor is released."""
        record = await self.observable(lines, chat_id, "takeover")
        if isinstance(record, ProtocolError):
            return record
        if record.state is not ChatState.active or record.counsellor_id is None:
            return _err(ErrorCode.invalid_state, "nobody is answering this chat", "takeover")
        if record.counsellor_id == supervisor.id:
            return _err(ErrorCode.invalid_state, "you are answering this chat", "takeover")
        line = self._chats.lines.get(record.line)
        if line is None or supervisor.qualification is None:
            return _err(ErrorCode.forbidden, "you cannot answer this line", "takeover")
        if not supervisor.qualification.satisfies(line.required_qualification):
            return _err(
                ErrorCode.forbidden,
                f"this line needs a {line.required_qualification.value}",
                "takeover",
            )
        previous = record.counsellor_id
        now = self._broker.now()
        result = await self._broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=previous,
                changes={
                    "counsellor_id": supervisor.id,
                    "counsellor_alias": supervisor.alias,
                    "wrapup_by": supervisor.id,
                    "counsellor_grace_until": None,
                },
                assign=(supervisor.id, supervisor.capacity),
                release=previous,
            ),
        )
        if result is Refusal.capacity:
            return _err(ErrorCode.over_capacity, "you are at your capacity", "takeover")
        if isinstance(result, Refusal):
            return _err(ErrorCode.not_in_chat, "the chat changed meanwhile", "takeover")
        await self._broker.cancel(deadline_key(Deadline.counsellor_grace, chat_id, previous))
        # A request for an interpreter was the previous counsellor's: it goes with them.
        await self._chats.interpreters.withdraw(result, "moved")
        # The visitor sees a new counsellor join; the one taken over from is told.
        await self._chats.core.append(
            result, Entry(EntryKind.joined, now, name=supervisor.alias, staff_id=supervisor.id)
        )
        await self._broker.publish(
            staff_channel(previous),
            {"type": "chat.released", "chat_id": chat_id, "reason": "taken_over"},
        )
        await self._broker.publish(
            staff_channel(supervisor.id),
            {"type": "chat.assigned", "chat_id": chat_id, "line": result.line},
        )
        return result

    async def ask_for_help(
        self, staff: StaffContext, chat_id: str, text: str
    ) -> tuple[ChatRecord, int] | ProtocolError:
        """Tell the on-duty supervisors of the chat's line that its counsellor asks for help.

        Returns the chat and how many supervisors were told (connected, on duty, not oneself).
        The text goes out live only: it is neither stored nor audited.
        """
        record = await self._chats.messages.own_active_chat(staff, chat_id, "help")
        if isinstance(record, ProtocolError):
            return record
        now = self._broker.now()
        result = await self._broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                counsellor=staff.id,
                changes={"help_requested_at": now},
            ),
        )
        if isinstance(result, Refusal):
            return _err(ErrorCode.not_in_chat, "the chat changed meanwhile", "help")
        told = 0
        sealed = (
            await self._chats.transcript.seal_aside(chat_id, text.strip()) if text.strip() else None
        )
        supervisors = await self._chats.router.supervisors_on_duty(
            record.line, now, besides=staff.id
        )
        for supervisor in supervisors:
            told += 1
            await self._broker.publish(
                staff_channel(supervisor),
                {
                    "type": "help.requested",
                    "chat_id": chat_id,
                    "line": record.line,
                    "counsellor": {"id": staff.id, "alias": staff.alias},
                    # Sealed with the chat's key: it crosses processes as entries do.
                    "sealed_text": sealed,
                    "at": now,
                },
            )
        return result, told

    async def team(self, lines: Collection[str]) -> list[dict[str, Any]]:
        """Who is on duty on these lines now: status, connection and load (no chat content)."""
        now = self._broker.now()
        people: dict[str, dict[str, Any]] = {}
        for line in sorted(lines):
            for candidate in await self._chats.router.candidates(line):
                presence = candidate.presence
                if not on_duty(presence, line, now):
                    continue
                person = people.get(presence.staff_id)
                if person is None:
                    person = people[presence.staff_id] = {
                        "id": presence.staff_id,
                        "alias": presence.alias,
                        "status": presence.status.value,
                        "connected": candidate.connected,
                        "load": candidate.load,
                        "capacity": presence.capacity,
                        "supervisor": presence.supervisor,
                        "peer": presence.peer,
                        "languages": list(presence.languages),
                        "lines": [],
                        "on_duty_until": presence.duty.get(line, 0.0),
                    }
                person["lines"].append(line)
                person["on_duty_until"] = max(person["on_duty_until"], presence.duty.get(line, 0.0))
        return sorted(people.values(), key=lambda p: (str(p["alias"]).casefold(), p["id"]))
