"""Interpreters: a counsellor asks for one in the visitor's language, an on-duty interpreter
with a free place is offered the chat and joins it as a third participant, and leaves, is
removed, or is declined by the visitor.

Who is in the chat lives in the chat's record (`interpreter`: "asked:<id>" or "in:<id>"),
changed only by compare-and-set transitions, so any process may act on it. The same
transitions count the chat against the interpreter's places (the broker's load set, as for
a counsellor's chats), so two processes cannot push an interpreter over their places. A
request belongs to the counsellor who asked: it is withdrawn when the chat ends or leaves
them. The interpreter sees the chat from their join on, as the visitor sees it (no note,
whisper or handover: `Audience.interpreter`); their messages are appended only while they
are in it (the broker's append checks it in the same atomic step).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from app.audit.service import AuditAction, audit_service
from app.broker.base import Refusal, Transition
from app.broker.records import LIVE_STATES, ChatRecord, ChatState
from app.chats import plan
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.core import ChatPart, err
from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError
from app.lines.service import LineConfig
from app.routing.policy import interpreters
from app.staff.service import StaffContext

LANGUAGE_TAG: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

# English names for the counsellor's answer when nobody interprets a language (the console
# shows its own words for the code and the tag; this is for any other client).
LANGUAGE_NAMES: Final = {
    "ar": "Arabic",
    "bg": "Bulgarian",
    "en": "English",
    "es": "Spanish",
    "fa": "Persian",
    "fr": "French",
    "hu": "Hungarian",
    "pl": "Polish",
    "ro": "Romanian",
    "ru": "Russian",
    "so": "Somali",
    "sv": "Swedish",
    "th": "Thai",
    "ti": "Tigrinya",
    "uk": "Ukrainian",
}


def language_name(tag: str) -> str:
    return LANGUAGE_NAMES.get(tag.split("-")[0], tag)


class Nobody(StrEnum):
    """Why no interpreter was asked (the `reason` of a `no_interpreter` error)."""

    # None for the language is on duty, connected and available.
    off_duty = "off_duty"
    # Some are, but each is asked or interpreting in as many chats as their places.
    busy = "busy"


@dataclass(frozen=True, slots=True)
class NoInterpreterError(ProtocolError):
    """`no_interpreter`, naming the chat, the language and why."""

    chat_id: str = ""
    language: str = ""
    reason: Nobody = Nobody.off_duty

    def frame(self) -> dict[str, Any]:
        out = ProtocolError.frame(self)
        out.update(chat_id=self.chat_id, language=self.language, reason=self.reason.value)
        return out


def offer_frame(record: ChatRecord, line: LineConfig | None) -> dict[str, Any]:
    """The `interpreter.offer` of the request pending in `record` (also listed in `hello`)."""
    return {
        "type": "interpreter.offer",
        "chat_id": record.id,
        "line": record.line,
        "line_name": line.name if line else record.line,
        "language": record.interpreter_language,
        "counsellor": record.counsellor_alias,
        "expires_at": record.interpreter_expires_at,
        "timeout_seconds": line.offer_timeout_seconds if line else 30,
    }


def withdrawn_frame(chat_id: str, reason: str) -> dict[str, Any]:
    return {"type": "interpreter.offer.withdrawn", "chat_id": chat_id, "reason": reason}


class Interpreters(ChatPart):
    async def request(
        self, staff: StaffContext, chat_id: str, language: str | None
    ) -> ChatRecord | ProtocolError:
        """Offer the counsellor's chat to an on-duty interpreter for `language` (the visitor's
        when not given). The chat after it, or why not (nothing changed)."""
        ref = "interpreter.request"
        if language is not None and not LANGUAGE_TAG.match(language):
            return err(ErrorCode.invalid_field, "that is not a language tag", ref)
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not in this chat", ref)
        if record.state is not ChatState.active:
            return err(ErrorCode.invalid_state, f"the chat is {record.state.value}", ref)
        language = language or record.language
        line = self.lines.get(record.line)
        if line is None or language not in line.languages:
            return err(ErrorCode.unknown_language, "the line does not offer that language", ref)
        if record.interpreter_id is not None:
            return err(ErrorCode.invalid_state, "an interpreter is in this chat already", ref)
        if record.interpreter_asked is not None:
            return err(ErrorCode.invalid_state, "an interpreter has been asked already", ref)
        offered = await self._offer(record, language, [], expect="", counsellor=staff.id)
        if offered is None:
            return err(ErrorCode.invalid_state, "the chat changed meanwhile", ref)
        if isinstance(offered, Nobody):
            return _nobody(record.id, language, offered)
        return offered

    async def _offer(
        self,
        record: ChatRecord,
        language: str,
        passed: list[str],
        *,
        expect: str,
        counsellor: str | None = None,
    ) -> ChatRecord | Nobody | None:
        """Ask the next interpreter for `language` not in `passed` who has a free place: the
        chat after it; or why nobody was asked (the request is then withdrawn and, when
        `expect` names the one asked before, the counsellor told); or None when the chat
        changed meanwhile (nothing was done)."""
        now = self.broker.now()
        line = self.lines.get(record.line)
        timeout = line.offer_timeout_seconds if line else 30
        previous = expect.removeprefix("asked:") or None
        nobody = Nobody.off_duty
        for candidate in interpreters(
            await self.router.candidates(record.line), record.line, language, now, passed
        ):
            picked = candidate.presence.staff_id
            places = candidate.presence.capacity
            if candidate.load >= places:
                nobody = Nobody.busy
                continue
            result = await self.broker.transition(
                record.id,
                Transition(
                    expect=frozenset({ChatState.active}),
                    counsellor=counsellor,
                    interpreter=expect,
                    changes={
                        "interpreter": f"asked:{picked}",
                        "interpreter_language": language,
                        "interpreter_passed": passed,
                        "interpreter_expires_at": now + timeout,
                    },
                    # The request holds a place of theirs until they answer, as an offer does.
                    assign=(picked, places),
                    release=previous,
                ),
            )
            if result is Refusal.capacity:
                # Another process filled their places meanwhile.
                nobody = Nobody.busy
                continue
            if isinstance(result, Refusal):
                return None
            await self.broker.update_presence(picked, {"last_offer_at": now})
            await self.broker.schedule(
                deadline_key(Deadline.interpreter_offer, record.id, picked), now + timeout
            )
            await self.broker.publish(staff_channel(picked), offer_frame(result, line))
            return result
        if previous is not None:
            # Nobody else to ask: the request is over, and the counsellor is told.
            withdrawn = await self.broker.transition(
                record.id,
                Transition(
                    expect=frozenset({ChatState.active}),
                    interpreter=expect,
                    changes=_no_request(),
                    release=previous,
                ),
            )
            if isinstance(withdrawn, Refusal):
                return None
            if withdrawn.counsellor_id is not None:
                await self.broker.publish(
                    staff_channel(withdrawn.counsellor_id),
                    _nobody(record.id, language, nobody).frame(),
                )
        return nobody

    async def withdraw(self, record: ChatRecord, reason: str) -> None:
        """Take back at once the request pending in `record`: the chat as left by the
        transition that ended it (`reason` `ended`) or took it from the counsellor who asked
        (`moved`). If the request was answered or passed on first, nothing happens."""
        asked = record.interpreter_asked
        if asked is None:
            return
        result = await self.broker.transition(
            record.id,
            Transition(
                expect=frozenset(ChatState),
                interpreter=f"asked:{asked}",
                changes=_no_request(),
                release=asked,
            ),
        )
        if isinstance(result, Refusal):
            return
        await self.broker.cancel(deadline_key(Deadline.interpreter_offer, record.id, asked))
        await self.broker.publish(staff_channel(asked), withdrawn_frame(record.id, reason))

    async def chat_ended(self, record: ChatRecord) -> None:
        """`record` just ended: a pending request is withdrawn, and the interpreter in it
        (who reads the end like the visitor) has their place back."""
        await self.withdraw(record, "ended")
        inside = record.interpreter_id
        if inside is not None:
            await self.broker.transition(
                record.id,
                Transition(
                    expect=frozenset({ChatState.ended}),
                    interpreter=f"in:{inside}",
                    release=inside,
                ),
            )

    async def counsellor_left(self, record: ChatRecord) -> None:
        """`record` just left its counsellor to wait again (a transfer, back to the queue): a
        pending request is withdrawn, and the interpreter in it leaves at once, as if removed
        (reason `counsellor_left`), their place free."""
        await self.withdraw(record, "moved")
        inside = record.interpreter_id
        if inside is not None:
            # No actor: nobody chose it for them.
            await self._put_out(record, inside, "counsellor_left", actor_id=None)

    async def deactivated(self, record: ChatRecord, actor_id: str) -> None:
        """The interpreter in `record` was deactivated (by `actor_id`): they leave at once, as
        if removed (reason `deactivated`), their place free."""
        inside = record.interpreter_id
        if inside is not None:
            await self._put_out(record, inside, "deactivated", actor_id=actor_id)

    async def _put_out(
        self, record: ChatRecord, inside: str, reason: str, *, actor_id: str | None
    ) -> None:
        """`inside` leaves `record` though they did not ask to: everyone in the chat sees
        `interpreter.left` with `reason`, and the audit log says who made them leave."""
        result = await self.broker.transition(
            record.id,
            Transition(
                # Even if the next counsellor has answered meanwhile: they did not ask for them.
                expect=LIVE_STATES,
                interpreter=f"in:{inside}",
                changes={"interpreter": None, "interpreter_alias": None},
                release=inside,
            ),
        )
        if isinstance(result, Refusal):
            return
        await self._left(result, record.interpreter_alias, inside, reason)
        # Which interpreter left which chat, and why. Often run from a deadline or after a
        # commit, with no database session: held like the chat's other rows.
        entry = audit_service.entry(
            AuditAction.interpreter_left,
            actor_id=actor_id,
            target_staff_id=inside,
            chat_id=record.id,
            line_key=result.line,
            detail={"reason": reason},
        )
        await self.held_rows.hold(entry)

    async def accept(
        self, interpreter: StaffContext, chat_id: str
    ) -> tuple[ChatRecord, int] | ProtocolError:
        """The interpreter joins: the chat and their joined entry's number."""
        ref = "interpreter.accept"
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                interpreter=f"asked:{interpreter.id}",
                changes={
                    "interpreter": f"in:{interpreter.id}",
                    "interpreter_alias": interpreter.alias,
                    "interpreter_passed": [],
                    "interpreter_expires_at": None,
                },
            ),
        )
        if isinstance(result, Refusal):
            record = await self.broker.get_chat(chat_id)
            if record is None or record.state is ChatState.ended:
                return err(ErrorCode.chat_ended, "the chat has ended", ref)
            return err(ErrorCode.offer_not_found, "this request is no longer yours", ref)
        await self.broker.cancel(deadline_key(Deadline.interpreter_offer, chat_id, interpreter.id))
        await self.broker.update_presence(interpreter.id, {"missed_offers": 0})
        entry = Entry(
            EntryKind.interpreter_joined,
            self.broker.now(),
            name=interpreter.alias,
            reason=result.interpreter_language,
            staff_id=interpreter.id,
        )
        seq, status = await self.transcript.add_one(chat_id, entry, last_seq=result.last_seq)
        if status != "ok":
            return err(ErrorCode.chat_ended, "the chat has ended", ref)
        return result.copy(last_seq=seq), seq

    async def decline(
        self, interpreter: StaffContext | str, chat_id: str, *, missed: bool = False
    ) -> ProtocolError | None:
        """The interpreter declines (or let lapse, `missed`) the request: the next one is
        asked, or the counsellor is told nobody is left."""
        staff_id = interpreter if isinstance(interpreter, str) else interpreter.id
        record = await self.broker.get_chat(chat_id)
        if record is None or record.interpreter_asked != staff_id:
            return err(ErrorCode.offer_not_found, "there is no such request", "interpreter.decline")
        if record.state is not ChatState.active:
            # It outlived its chat (the process that ended or moved it stopped first).
            await self.withdraw(record, "ended" if record.state is ChatState.ended else "moved")
            return None
        await self.broker.cancel(deadline_key(Deadline.interpreter_offer, chat_id, staff_id))
        # Every console of theirs lets the offer go (the one that declined has already).
        await self.broker.publish(
            staff_channel(staff_id), withdrawn_frame(chat_id, "expired" if missed else "declined")
        )
        if missed:
            # The same rule as for a counsellor's offers: after a few lapses they are away.
            await self.core.offer_missed(staff_id)
        await self._offer(
            record,
            record.interpreter_language or record.language,
            [*record.interpreter_passed, staff_id],
            expect=f"asked:{staff_id}",
        )
        return None

    async def leave(
        self, interpreter_id: str, chat_id: str, reason: str, ref: str
    ) -> ChatRecord | ProtocolError:
        """The interpreter is out of the chat (`reason`: left, removed, declined)."""
        record = await self.broker.get_chat(chat_id)
        if record is None or record.state is not ChatState.active:
            return err(ErrorCode.not_in_chat, "no interpreter is in this chat", ref)
        result = await self.broker.transition(
            chat_id,
            Transition(
                expect=frozenset({ChatState.active}),
                interpreter=f"in:{interpreter_id}",
                changes={"interpreter": None, "interpreter_alias": None},
                release=interpreter_id,
            ),
        )
        if isinstance(result, Refusal):
            return err(ErrorCode.invalid_state, "no interpreter is in this chat", ref)
        return await self._left(result, record.interpreter_alias, interpreter_id, reason)

    async def _left(
        self, record: ChatRecord, alias: str | None, interpreter_id: str, reason: str
    ) -> ChatRecord:
        """The `interpreter.left` entry everyone in the chat sees (the interpreter's console
        lets the chat go on it): the chat after it."""
        entry = Entry(
            EntryKind.interpreter_left,
            self.broker.now(),
            name=alias,
            reason=reason,
            staff_id=interpreter_id,
        )
        seq, _ = await self.transcript.add_one(record.id, entry, last_seq=record.last_seq)
        return record.copy(last_seq=max(seq, record.last_seq))

    async def remove(
        self, staff: StaffContext, chat_id: str
    ) -> tuple[ChatRecord, str] | ProtocolError:
        """The counsellor removes the interpreter from their chat: the chat and who it was."""
        ref = "interpreter.remove"
        record = await self.broker.get_chat(chat_id)
        if record is None or record.counsellor_id != staff.id:
            return err(ErrorCode.not_in_chat, "you are not in this chat", ref)
        interpreter_id = record.interpreter_id
        if interpreter_id is None:
            return err(ErrorCode.invalid_state, "no interpreter is in this chat", ref)
        left = await self.leave(interpreter_id, chat_id, "removed", ref)
        return left if isinstance(left, ProtocolError) else (left, interpreter_id)

    async def visitor_decline(self, chat_id: str) -> tuple[ChatRecord, str] | ProtocolError:
        """The visitor does not want the interpreter: they leave at once."""
        ref = "interpreter.decline"
        record = await self.broker.get_chat(chat_id)
        interpreter_id = record.interpreter_id if record is not None else None
        if record is None or interpreter_id is None:
            return err(ErrorCode.invalid_state, "no interpreter is in this chat", ref)
        left = await self.leave(interpreter_id, chat_id, "declined", ref)
        return left if isinstance(left, ProtocolError) else (left, interpreter_id)

    async def message(
        self,
        staff: StaffContext,
        chat_id: str,
        text: str,
        client_id: str | None,
        *,
        last_seq: int,
        origin: str,
        line_key: str | None = None,
    ) -> tuple[int, bool] | ProtocolError:
        """An interpreter's message, stored only while they are in the chat."""
        planned = plan.staff_message(
            self.core.message_limit(line_key),
            staff.id,
            staff.alias,
            text,
            client_id,
            self.broker.now(),
            origin,
            sender="interpreter",
        )
        if isinstance(planned, ProtocolError):
            return planned
        (added,) = await self.transcript.add(
            chat_id, [planned], last_seq=last_seq, interpreter=staff.id
        )
        if added[1] == "forbidden" or (added[1] == "ended" and line_key is None):
            return err(ErrorCode.not_in_chat, "you are not in this chat", "message")
        return plan.message_added(added)


def _no_request() -> dict[str, Any]:
    """The changes that leave a chat with no request pending."""
    return {"interpreter": None, "interpreter_passed": [], "interpreter_expires_at": None}


def _nobody(chat_id: str, language: str, why: Nobody) -> NoInterpreterError:
    name = language_name(language)
    message = (
        f"every interpreter for {name} is busy"
        if why is Nobody.busy
        else f"no interpreter for {name} is on duty"
    )
    return NoInterpreterError(
        ErrorCode.no_interpreter,
        message,
        "interpreter.request",
        chat_id=chat_id,
        language=language,
        reason=why,
    )
