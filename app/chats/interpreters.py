"""Interpreters: a counsellor asks for one in the visitor's language, an on-duty interpreter
is offered the chat and joins it as a third participant, and leaves, is removed, or is
declined by the visitor.

Who is in the chat lives in the chat's record (`interpreter`: "asked:<id>" or "in:<id>"),
changed only by compare-and-set transitions, so any process may act on it. The interpreter
sees the chat from their join on, as the visitor sees it (no note, whisper or handover:
`Audience.interpreter`); their messages are appended only while they are in it (the
broker's append checks it in the same atomic step).
"""

from __future__ import annotations

import re
from typing import Final

from app.broker.base import Refusal, Transition
from app.broker.records import ChatRecord, ChatState
from app.chats import plan
from app.chats.channels import Deadline, deadline_key, staff_channel
from app.chats.core import ChatPart, err
from app.chats.entries import Entry, EntryKind
from app.chats.protocol import ErrorCode, ProtocolError
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
            return _nobody(language, ref)
        return offered

    async def _offer(
        self,
        record: ChatRecord,
        language: str,
        passed: list[str],
        *,
        expect: str,
        counsellor: str | None = None,
    ) -> ChatRecord | None:
        """Ask the next interpreter for `language` not in `passed`; the chat after it, or None
        when nobody is left to ask (the request is then withdrawn)."""
        now = self.broker.now()
        for candidate in interpreters(
            await self.router.candidates(record.line), record.line, language, now, passed
        ):
            picked = candidate.presence.staff_id
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
                    },
                ),
            )
            if isinstance(result, Refusal):
                return None
            line = self.lines.get(record.line)
            timeout = line.offer_timeout_seconds if line else 30
            await self.broker.update_presence(picked, {"last_offer_at": now})
            await self.broker.schedule(
                deadline_key(Deadline.interpreter_offer, record.id, picked), now + timeout
            )
            await self.broker.publish(
                staff_channel(picked),
                {
                    "type": "interpreter.offer",
                    "chat_id": record.id,
                    "line": record.line,
                    "line_name": line.name if line else record.line,
                    "language": language,
                    "counsellor": record.counsellor_alias,
                    "expires_at": now + timeout,
                    "timeout_seconds": timeout,
                },
            )
            return result
        if expect:
            # Nobody else to ask: the request is over, and the counsellor is told.
            withdrawn = await self.broker.transition(
                record.id,
                Transition(
                    expect=frozenset({ChatState.active}),
                    interpreter=expect,
                    changes={"interpreter": None, "interpreter_passed": []},
                ),
            )
            if not isinstance(withdrawn, Refusal) and withdrawn.counsellor_id is not None:
                await self.broker.publish(
                    staff_channel(withdrawn.counsellor_id),
                    {
                        **_nobody(language, "interpreter.request").frame(),
                        "chat_id": record.id,
                        "language": language,
                    },
                )
        return None

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
                },
            ),
        )
        if isinstance(result, Refusal):
            return err(ErrorCode.offer_not_found, "this request is no longer yours", ref)
        await self.broker.cancel(deadline_key(Deadline.interpreter_offer, chat_id, interpreter.id))
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
        await self.broker.cancel(deadline_key(Deadline.interpreter_offer, chat_id, staff_id))
        if missed:
            await self.broker.publish(
                staff_channel(staff_id),
                {"type": "interpreter.offer.withdrawn", "chat_id": chat_id},
            )
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
            ),
        )
        if isinstance(result, Refusal):
            return err(ErrorCode.invalid_state, "no interpreter is in this chat", ref)
        entry = Entry(
            EntryKind.interpreter_left,
            self.broker.now(),
            name=record.interpreter_alias,
            reason=reason,
            staff_id=interpreter_id,
        )
        seq, _ = await self.transcript.add_one(chat_id, entry, last_seq=result.last_seq)
        return result.copy(last_seq=max(seq, result.last_seq))

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


def _nobody(language: str, ref: str) -> ProtocolError:
    return err(
        ErrorCode.no_interpreter,
        f"no interpreter for {language_name(language)} is on duty",
        ref,
    )
