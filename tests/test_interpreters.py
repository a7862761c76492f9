"""Interpreters: a counsellor asks for one, an on-duty interpreter joins as a third participant
the visitor sees, their messages are labelled both ways, the visitor may decline them, the
counsellor may remove them; notes, whispers and what came before never reach them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.kit.db import unit_of_work
from app.models import AuditEntry
from app.models.enums import Qualification, StaffRole
from tests.support.clients import (
    StaffClient,
    VisitorClient,
    api,
    open_staff,
    open_visitor,
    sign_in_session,
)
from tests.support.held import written
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.both_brokers]

NOTE = "She mentioned a man called Viktor"
WHISPER = "Ask about her passport"
BEFORE = "Nu stiu cum sa incep"


def texts(frames: list[dict[str, Any]]) -> str:
    return json.dumps(frames, ensure_ascii=False)


async def romanian_chat(
    server: RunningServer,
    *,
    interpreter_on_duty: bool = True,
    interpreter_places: int = 2,
    **line: Any,
) -> tuple[StaffClient, StaffClient | None, StaffClient, VisitorClient]:
    """Anna (sv, en) answers a visitor writing in Romanian; Bo supervises; Ion interprets
    Romanian (on duty, signed in, available) unless told otherwise."""
    rt = server.runtime
    await add_line(rt, languages=["sv", "en", "ro"], **line)
    await add_counsellor(rt, "anna", alias="Anna", languages=("sv", "en"), capacity=3)
    await add_counsellor(rt, "bo", alias="Bo", supervisor=True, languages=("sv",))
    await add_counsellor(
        rt,
        "ion",
        alias="Ion",
        qualification=Qualification.interpreter,
        languages=("ro",),
        on_duty=interpreter_on_duty,
        capacity=interpreter_places,
    )
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    ion = await open_staff(server, "ion", PASSWORD) if interpreter_on_duty else None
    visitor = await open_visitor(server)
    await visitor.start(language="ro")
    offer = await anna.expect("offer")
    # Nobody answering speaks Romanian, but an interpreter for it is on duty.
    assert offer["interpreter_available"] is interpreter_on_duty
    await anna.accept(offer["chat_id"])
    await visitor.expect("counsellor.joined")
    await visitor.say(BEFORE)
    await anna.expect("message", sender="visitor", text=BEFORE)
    return anna, ion, bo, visitor


async def another_romanian_chat(server: RunningServer, anna: StaffClient) -> VisitorClient:
    """One more visitor writing in Romanian, answered by Anna."""
    visitor = await open_visitor(server)
    await visitor.start(language="ro")
    await anna.accept((await anna.expect("offer", chat_id=visitor.chat_id))["chat_id"])
    await visitor.expect("counsellor.joined")
    return visitor


async def audit_entry(server: RunningServer, chat: str, action: str) -> AuditEntry:
    """The one audit entry `action` about `chat`, once the held rows are written."""
    found: list[AuditEntry] = []

    async def logged() -> bool:
        await written(server.runtime)
        async with unit_of_work(server.runtime.sessionmaker) as session:
            entries = await audit_service.search(
                session, AuditFilter(chat_id=chat), limit=50, offset=0
            )
        found[:] = [e for e in entries if e.action == action]
        return bool(found)

    await eventually(logged)
    (entry,) = found
    return entry


async def ask(anna: StaffClient, ion: StaffClient, chat: str) -> dict[str, Any]:
    """Anna asks for an interpreter in `chat`; Ion is offered it: the offer."""
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    assert (await anna.expect("interpreter.asked", chat_id=chat))["language"] == "ro"
    offer = await ion.expect("interpreter.offer", chat_id=chat)
    assert offer["language"] == "ro" and offer["counsellor"] == "Anna"
    return offer


async def join(anna: StaffClient, ion: StaffClient, chat: str) -> dict[str, Any]:
    await ask(anna, ion, chat)
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    return await ion.expect("interpreting", chat_id=chat)


async def refused_busy(anna: StaffClient, chat: str) -> None:
    """Anna's request in `chat` finds every interpreter for Romanian busy."""
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    error = await anna.expect("error", ref="interpreter.request", chat_id=chat)
    assert error["code"] == "no_interpreter" and error["reason"] == "busy"
    assert error["message"] == "every interpreter for Romanian is busy"
    assert error["language"] == "ro"


async def test_an_interpreter_joins_is_labelled_both_ways_and_never_sees_notes_or_whispers(
    server: RunningServer,
) -> None:
    anna, ion, bo, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    await bo.send({"type": "observe", "chat_id": chat})
    await bo.expect("chat.observing")
    # A note before the interpreter joins, and one after.
    await anna.send({"type": "note", "chat_id": chat, "text": "first " + NOTE})

    await join(anna, ion, chat)
    joined = await visitor.expect("interpreter.joined")
    assert joined["name"] == "Ion" and joined["language"] == "ro"
    await anna.expect("interpreter.joined", name="Ion")

    await anna.send({"type": "note", "chat_id": chat, "text": NOTE})
    await bo.send({"type": "whisper", "chat_id": chat, "text": WHISPER})
    await bo.expect("whisper.ack")
    await anna.expect("whisper", text=WHISPER)

    # Counsellor -> interpreter -> visitor, and back, each labelled as whose it is.
    await anna.say(chat, "How can I help you?")
    assert (await ion.expect("message", sender="counsellor"))["name"] == "Anna"
    await ion.say(chat, "Cum te pot ajuta?")
    got = await visitor.expect("message", sender="interpreter")
    assert got["text"] == "Cum te pot ajuta?" and got["name"] == "Ion"
    assert (await anna.expect("message", sender="interpreter"))["name"] == "Ion"
    await visitor.say("Am nevoie de ajutor")
    await ion.expect("message", sender="visitor", text="Am nevoie de ajutor")
    await ion.say(chat, "I need help")
    await anna.expect("message", sender="interpreter", text="I need help")
    assert (await visitor.expect("message", sender="interpreter"))["text"] == "I need help"

    # Asking the server for the whole transcript gives the interpreter nothing from before.
    await ion.send({"type": "sync", "chat_id": chat, "last_seq": 0})
    await ion.expect("synced", chat_id=chat)
    seen = texts(ion.received)
    for secret in (NOTE, WHISPER, BEFORE):
        assert secret not in seen
    assert ion.seen("note") == [] and ion.seen("whisper") == []

    # The visitor declines: the interpreter leaves at once, everyone is told.
    await visitor.send({"type": "interpreter.decline"})
    assert (await visitor.expect("interpreter.left"))["reason"] == "declined"
    await anna.expect("interpreter.left", reason="declined")
    await ion.expect("interpreter.left", reason="declined")
    # Declining again: a clear error, nothing changes.
    await visitor.send({"type": "interpreter.decline"})
    error = await visitor.expect("error", ref="interpreter.decline")
    assert error["code"] == "invalid_state"
    # What the interpreter sends now is refused and stored nowhere.
    await ion.send({"type": "message", "chat_id": chat, "text": "still here", "client_id": "x1"})
    assert (await ion.expect("error", ref="message"))["code"] == "not_in_chat"
    await anna.say(chat, "Are you safe?")
    await ion.expect_none("message", within=0.3, text="Are you safe?")

    # Asked again, they join again; then the counsellor removes them.
    await join(anna, ion, chat)
    await visitor.expect("interpreter.joined")
    await anna.send({"type": "interpreter.remove", "chat_id": chat})
    await visitor.expect("interpreter.left", reason="removed")
    await ion.expect("interpreter.left", reason="removed")
    await anna.send({"type": "interpreter.remove", "chat_id": chat})
    assert (await anna.expect("error", ref="interpreter.remove"))["code"] == "invalid_state"
    entries = await server.runtime.transcript.read(chat, 0)
    assert "still here" not in [e.text for _, e in entries]

    await written(server.runtime, at_least=8)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        logged = await audit_service.search(session, AuditFilter(chat_id=chat), limit=50, offset=0)
    actions = sorted(e.action for e in logged if e.action.startswith("interpreter."))
    assert actions == [
        "interpreter.joined",
        "interpreter.joined",
        "interpreter.left",
        "interpreter.left",
        "interpreter.requested",
        "interpreter.requested",
    ]
    dumped = json.dumps([[e.action, e.detail] for e in logged], ensure_ascii=False)
    for said in ("Cum te pot ajuta", "I need help", NOTE, BEFORE):
        assert said not in dumped
    reasons = sorted(e.detail.get("reason", "") for e in logged if e.action == "interpreter.left")
    assert reasons == ["declined", "removed"]


async def test_the_interpreter_leaves_and_the_chat_goes_on(server: RunningServer) -> None:
    anna, ion, _, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    await join(anna, ion, chat)
    await ion.send({"type": "interpreter.leave", "chat_id": chat})
    await visitor.expect("interpreter.left", reason="left", name="Ion")
    await anna.expect("interpreter.left", reason="left")
    await ion.send({"type": "interpreter.leave", "chat_id": chat})
    assert (await ion.expect("error", ref="interpreter.leave"))["code"] == "not_in_chat"
    await anna.say(chat, "Still here with you")
    await visitor.expect("message", text="Still here with you")


async def test_no_interpreter_on_duty_is_a_clear_answer_and_changes_nothing(
    server: RunningServer,
) -> None:
    anna, _, _, visitor = await romanian_chat(server, interpreter_on_duty=False)
    chat = visitor.chat_id
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    error = await anna.expect("error", ref="interpreter.request")
    assert error["code"] == "no_interpreter" and error["reason"] == "off_duty"
    assert error["message"] == "no interpreter for Romanian is on duty"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.interpreter is None
    await visitor.expect_none("interpreter.joined", within=0.2)


async def test_bad_interpreter_requests_are_refused_and_change_nothing(
    server: RunningServer,
) -> None:
    anna, ion, bo, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    cases = [
        ({"language": "Romanian!"}, "invalid_field"),
        ({"language": "xx"}, "unknown_language"),
        ({"language": "r" * 40}, "invalid_field"),
    ]
    for extra, code in cases:
        await anna.send({"type": "interpreter.request", "chat_id": chat, **extra})
        assert (await anna.expect("error", ref="interpreter.request"))["code"] == code
    # Someone else's chat, and a counsellor who is no interpreter accepting.
    await bo.send({"type": "interpreter.request", "chat_id": chat})
    assert (await bo.expect("error", ref="interpreter.request"))["code"] == "not_in_chat"
    await anna.send({"type": "interpreter.accept", "chat_id": chat})
    assert (await anna.expect("error", ref="interpreter.accept"))["code"] == "forbidden"
    # An interpreter not asked cannot join.
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    assert (await ion.expect("error", ref="interpreter.accept"))["code"] == "offer_not_found"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.interpreter is None

    # Flooding the request: one offer goes out, every other request is refused.
    for _ in range(10):
        await anna.send({"type": "interpreter.request", "chat_id": chat})
    await anna.expect("interpreter.asked")
    refused = 0
    for _ in range(9):
        error = await anna.expect("error")
        assert error["code"] in ("invalid_state", "rate_limited")
        refused += 1
    assert refused == 9
    await ion.expect("interpreter.offer", chat_id=chat)
    await ion.expect_none("interpreter.offer", within=0.3)


async def test_a_declined_request_tells_the_counsellor_nobody_is_left(
    server: RunningServer,
) -> None:
    anna, ion, _, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    await ion.expect("interpreter.offer", chat_id=chat)
    await ion.send({"type": "interpreter.decline", "chat_id": chat})
    error = await anna.expect("error", code="no_interpreter", chat_id=chat)
    assert error["language"] == "ro"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.interpreter is None


async def reconnected(server: RunningServer, ion: StaffClient) -> StaffClient:
    """Ion's console reloads (the same session, a new connection)."""
    await ion.close()
    return await open_staff(server, "ion", PASSWORD, available=False, cookie=ion.cookie)


async def end_chat(how: str, anna: StaffClient, visitor: VisitorClient) -> None:
    if how == "visitor_ended":
        await visitor.send({"type": "end"})
    elif how == "visitor_exit":
        await visitor.send({"type": "exit"})
    elif how == "counsellor_ended":
        await anna.send({"type": "end", "chat_id": visitor.chat_id})
    else:  # the visitor's connection drops and their grace runs out
        await visitor.close()
    await anna.expect("chat.ended", chat_id=visitor.chat_id)


@pytest.mark.parametrize(
    "how", ["visitor_ended", "visitor_exit", "counsellor_ended", "visitor_left"]
)
async def test_a_pending_request_is_withdrawn_when_the_chat_ends(
    server: RunningServer, how: str
) -> None:
    anna, ion, _, visitor = await romanian_chat(server, visitor_grace_seconds=1)
    assert ion is not None
    chat = visitor.chat_id
    await ask(anna, ion, chat)

    await end_chat(how, anna, visitor)
    # The offer leaves the interpreter's console at once, not when it would have lapsed.
    withdrawn = await ion.expect("interpreter.offer.withdrawn", chat_id=chat)
    assert withdrawn["reason"] == "ended"
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    error = await ion.expect("error", ref="interpreter.accept")
    assert error["code"] == "chat_ended" and error["message"] == "the chat has ended"
    await anna.expect_none("interpreter.joined", within=0.2)
    broker = server.runtime.broker
    record = await broker.get_chat(chat)
    assert record is None or record.interpreter is None
    assert await broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}
    ion = await reconnected(server, ion)
    assert ion.hello["interpreter_offers"] == [] and ion.hello["interpreting"] == []


@pytest.mark.parametrize("how", ["transfer", "takeover", "counsellor_gone"])
async def test_a_pending_request_is_withdrawn_when_the_chat_leaves_its_counsellor(
    server: RunningServer, how: str
) -> None:
    """Transferred, taken over by a supervisor, or back in the queue after its counsellor
    dropped: the request was the counsellor's, and goes with them."""
    anna, ion, bo, visitor = await romanian_chat(server, counsellor_grace_seconds=1)
    assert ion is not None
    chat = visitor.chat_id
    await ask(anna, ion, chat)

    if how == "transfer":
        await anna.send({"type": "transfer", "chat_id": chat, "line": "support"})
        await anna.expect("chat.released", chat_id=chat, reason="transferred")
    elif how == "takeover":
        await bo.send({"type": "takeover", "chat_id": chat})
        await bo.expect("chat.opened", chat_id=chat)
    else:
        await anna.close()
        await visitor.expect("counsellor.left", reason="counsellor_disconnected")
    withdrawn = await ion.expect("interpreter.offer.withdrawn", chat_id=chat)
    assert withdrawn["reason"] == "moved"
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    error = await ion.expect("error", ref="interpreter.accept")
    assert error["code"] == "offer_not_found"
    assert error["message"] == "this request is no longer yours"
    await visitor.expect_none("interpreter.joined", within=0.2)
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.interpreter is None
    assert await server.runtime.broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}

    if how == "takeover":
        # The supervisor who has the chat now may ask afresh.
        await bo.send({"type": "interpreter.request", "chat_id": chat})
        await bo.expect("interpreter.asked", chat_id=chat)
        offer = await ion.expect("interpreter.offer", chat_id=chat)
        assert offer["counsellor"] == "Bo"
        await ion.send({"type": "interpreter.accept", "chat_id": chat})
        await ion.expect("interpreting", chat_id=chat)
        await visitor.expect("interpreter.joined", name="Ion")


async def test_an_interpreter_is_never_asked_beyond_their_places(server: RunningServer) -> None:
    """Ion has one place: a chat he interprets in, or a request offered to him, fills it;
    it frees when the chat ends, he declines, or he leaves."""
    anna, ion, _, first = await romanian_chat(server, interpreter_places=1)
    assert ion is not None
    broker = server.runtime.broker
    await join(anna, ion, first.chat_id)
    await first.expect("interpreter.joined")
    second = await another_romanian_chat(server, anna)
    await refused_busy(anna, second.chat_id)
    await ion.expect_none("interpreter.offer", within=0.3)
    record = await broker.get_chat(second.chat_id)
    assert record is not None and record.interpreter is None
    # An offer whose visitor's language nobody answering speaks still says an interpreter
    # for it is on duty: busy, but there.
    third = await open_visitor(server)
    await third.start(language="ro")
    assert (await anna.expect("offer", chat_id=third.chat_id))["interpreter_available"] is True
    await anna.accept(third.chat_id)

    # The first chat ends with Ion in it: his place is free again.
    await first.send({"type": "end"})
    await ion.expect("chat.ended", chat_id=first.chat_id)
    await ask(anna, ion, second.chat_id)
    # The request offered to him holds his place until he answers.
    await refused_busy(anna, third.chat_id)
    await ion.send({"type": "interpreter.decline", "chat_id": second.chat_id})
    await anna.expect("error", code="no_interpreter", chat_id=second.chat_id)
    await join(anna, ion, third.chat_id)
    await refused_busy(anna, second.chat_id)
    await ion.send({"type": "interpreter.leave", "chat_id": third.chat_id})
    await anna.expect("interpreter.left", chat_id=third.chat_id)
    await ask(anna, ion, second.chat_id)
    assert await broker.staff_loads([ion.staff_id]) == {ion.staff_id: 1}


async def test_a_reloading_interpreter_keeps_the_offer(server: RunningServer) -> None:
    anna, ion, _, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    offer = await ask(anna, ion, chat)

    ion = await reconnected(server, ion)
    (listed,) = ion.hello["interpreter_offers"]
    assert listed == {k: v for k, v in offer.items() if k != "type"}
    assert ion.hello["offers"] == []
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    await ion.expect("interpreting", chat_id=chat)
    await visitor.expect("interpreter.joined", name="Ion")
    # Once joined, the chat is listed as one he interprets in, no longer as an offer.
    ion = await reconnected(server, ion)
    assert ion.hello["interpreter_offers"] == []
    assert [c["chat_id"] for c in ion.hello["interpreting"]] == [chat]


@pytest.mark.parametrize(
    "how", ["visitor_ended", "visitor_exit", "counsellor_ended", "visitor_left"]
)
async def test_the_interpreter_in_a_chat_that_ends_leaves_it_with_their_place_free(
    server: RunningServer, how: str
) -> None:
    anna, ion, _, visitor = await romanian_chat(server, visitor_grace_seconds=1)
    assert ion is not None
    chat = visitor.chat_id
    await join(anna, ion, chat)

    await end_chat(how, anna, visitor)
    await ion.expect("chat.ended", chat_id=chat)
    await ion.send({"type": "message", "chat_id": chat, "text": "Hello?"})
    assert (await ion.expect("error", ref="message"))["code"] == "not_in_chat"
    assert await server.runtime.broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}
    ion = await reconnected(server, ion)
    assert ion.hello["interpreting"] == [] and ion.hello["interpreter_offers"] == []


async def waits_again(how: str, anna: StaffClient, visitor: VisitorClient) -> None:
    """Anna's chat waits again with no counsellor: she sends it back to the line's queue, or
    her connection drops past its grace."""
    chat = visitor.chat_id
    if how == "sent_back":
        await anna.send({"type": "transfer", "chat_id": chat, "line": "support"})
        await anna.expect("chat.released", chat_id=chat, reason="transferred")
        await visitor.expect("counsellor.left", reason="transferred")
    else:
        await anna.close()
        await visitor.expect("counsellor.left", reason="counsellor_disconnected")


@pytest.mark.parametrize("how", ["sent_back", "counsellor_gone"])
async def test_the_interpreter_leaves_a_chat_that_waits_again_with_no_counsellor(
    server: RunningServer, how: str
) -> None:
    """A visitor is never left with an interpreter and no counsellor: the interpreter leaves
    as if removed, their place free, and whoever answers next may ask afresh."""
    anna, ion, _, visitor = await romanian_chat(server, counsellor_grace_seconds=1)
    assert ion is not None
    chat = visitor.chat_id
    await join(anna, ion, chat)
    await visitor.expect("interpreter.joined", name="Ion")

    await waits_again(how, anna, visitor)
    # The visitor sees what a removal shows; the interpreter's console is told why.
    left = await visitor.expect("interpreter.left", chat_id=chat)
    assert left["name"] == "Ion" and left["reason"] == "counsellor_left"
    await ion.expect("interpreter.left", chat_id=chat, reason="counsellor_left")
    await ion.send({"type": "message", "chat_id": chat, "text": "Are you still there?"})
    assert (await ion.expect("error", ref="message"))["code"] == "not_in_chat"
    broker = server.runtime.broker
    record = await broker.get_chat(chat)
    assert record is not None and record.interpreter is None
    assert await broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}
    ion = await reconnected(server, ion)
    assert ion.hello["interpreting"] == []
    # The audit log says which interpreter left which chat, and why: no actor, no content.
    left_entry = await audit_entry(server, chat, "interpreter.left")
    assert left_entry.detail == {"reason": "counsellor_left"}
    assert str(left_entry.target_staff_id) == ion.staff_id and left_entry.actor_id is None

    # The counsellor who answers it next finds no interpreter, and may ask for one.
    await add_counsellor(server.runtime, "cia", alias="Cia", languages=("sv",))
    cia = await open_staff(server, "cia", PASSWORD)
    await cia.expect("offer", chat_id=chat)
    opened = await cia.accept(chat)
    assert opened["interpreter"] is None
    await cia.send({"type": "interpreter.request", "chat_id": chat})
    await cia.expect("interpreter.asked", chat_id=chat)
    assert (await ion.expect("interpreter.offer", chat_id=chat))["counsellor"] == "Cia"
    await ion.send({"type": "interpreter.accept", "chat_id": chat})
    await ion.expect("interpreting", chat_id=chat)
    await visitor.expect("interpreter.joined", name="Ion")


async def test_a_supervisor_who_takes_over_finds_the_interpreter_and_may_remove_them(
    server: RunningServer,
) -> None:
    anna, ion, bo, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    await join(anna, ion, chat)
    await visitor.expect("interpreter.joined", name="Ion")

    await bo.send({"type": "takeover", "chat_id": chat})
    opened = await bo.expect("chat.opened", chat_id=chat)
    assert opened["interpreter"] == {"name": "Ion", "language": "ro"}
    await bo.expect("interpreter.joined", chat_id=chat, name="Ion")
    # A counsellor still answers: the interpreter stays and goes on interpreting.
    await ion.say(chat, "Buna, sunt aici")
    await visitor.expect("message", sender="interpreter", name="Ion")
    await visitor.expect_none("interpreter.left", within=0.2)

    await bo.send({"type": "interpreter.remove", "chat_id": chat})
    await ion.expect("interpreter.left", chat_id=chat, reason="removed")
    await visitor.expect("interpreter.left", reason="removed")
    assert await server.runtime.broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}


async def a_second_interpreter(server: RunningServer) -> StaffClient:
    """Iva interprets Romanian too, on duty, signed in and available."""
    await add_counsellor(
        server.runtime,
        "iva",
        alias="Iva",
        qualification=Qualification.interpreter,
        languages=("ro",),
    )
    return await open_staff(server, "iva", PASSWORD)


async def test_a_deactivated_interpreters_request_passes_on_at_once(
    server: RunningServer,
) -> None:
    """Not when it would have lapsed (the line's offer timeout is far longer than any wait
    here): the next interpreter is asked at once, as after a decline."""
    anna, ion, _, visitor = await romanian_chat(server, offer_timeout_seconds=600)
    assert ion is not None
    chat = visitor.chat_id
    await ask(anna, ion, chat)
    iva = await a_second_interpreter(server)
    await add_staff(server.runtime, "cora", StaffRole.coordinator)
    cora = await sign_in_session(server, "cora", PASSWORD)

    response = await api(server, cora, "POST", f"/api/staff/{ion.staff_id}/deactivate")
    assert response.status_code == 200
    offer = await iva.expect("interpreter.offer", chat_id=chat)
    assert offer["counsellor"] == "Anna"
    broker = server.runtime.broker
    assert await broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}
    await iva.send({"type": "interpreter.accept", "chat_id": chat})
    await iva.expect("interpreting", chat_id=chat)
    await visitor.expect("interpreter.joined", name="Iva")
    await anna.expect_none("error", within=0.2, code="no_interpreter")


async def test_a_deactivated_interpreters_request_with_nobody_left_tells_the_counsellor(
    server: RunningServer,
) -> None:
    anna, ion, _, visitor = await romanian_chat(server, offer_timeout_seconds=600)
    assert ion is not None
    chat = visitor.chat_id
    await ask(anna, ion, chat)
    await add_staff(server.runtime, "cora", StaffRole.coordinator)
    cora = await sign_in_session(server, "cora", PASSWORD)

    response = await api(server, cora, "POST", f"/api/staff/{ion.staff_id}/deactivate")
    assert response.status_code == 200
    error = await anna.expect("error", code="no_interpreter", chat_id=chat)
    assert error["reason"] == "off_duty"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.interpreter is None
    assert await server.runtime.broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}


async def test_a_deactivated_interpreter_leaves_their_chat_as_if_removed(
    server: RunningServer,
) -> None:
    """Their connections close, and the chat lets them go too: the visitor and counsellor
    see them leave, and the counsellor may ask another interpreter at once."""
    anna, ion, _, visitor = await romanian_chat(server)
    assert ion is not None
    chat = visitor.chat_id
    await join(anna, ion, chat)
    await visitor.expect("interpreter.joined", name="Ion")
    cora_id = await add_staff(server.runtime, "cora", StaffRole.coordinator)
    cora = await sign_in_session(server, "cora", PASSWORD)

    response = await api(server, cora, "POST", f"/api/staff/{ion.staff_id}/deactivate")
    assert response.status_code == 200
    left = await visitor.expect("interpreter.left", chat_id=chat)
    assert left["name"] == "Ion" and left["reason"] == "deactivated"
    await anna.expect("interpreter.left", chat_id=chat, name="Ion", reason="deactivated")
    broker = server.runtime.broker
    record = await broker.get_chat(chat)
    assert record is not None and record.interpreter is None
    assert await broker.staff_loads([ion.staff_id]) == {ion.staff_id: 0}
    # Audited like a removal: who made which interpreter leave which chat, no content.
    left_entry = await audit_entry(server, chat, "interpreter.left")
    assert left_entry.detail == {"reason": "deactivated"}
    assert str(left_entry.actor_id) == cora_id
    assert str(left_entry.target_staff_id) == ion.staff_id

    # The chat's place for an interpreter is free: another one is asked and joins.
    iva = await a_second_interpreter(server)
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    await anna.expect("interpreter.asked", chat_id=chat)
    assert (await iva.expect("interpreter.offer", chat_id=chat))["counsellor"] == "Anna"
    await iva.send({"type": "interpreter.accept", "chat_id": chat})
    await iva.expect("interpreting", chat_id=chat)
    await visitor.expect("interpreter.joined", name="Iva")
    await anna.say(chat, "Still here with you")
    await visitor.expect("message", text="Still here with you")


async def lapses(anna: StaffClient, ion: StaffClient, chat: str) -> None:
    """Anna asks, the request lapses with Ion, and Anna hears nobody is left."""
    await ask(anna, ion, chat)
    withdrawn = await ion.expect("interpreter.offer.withdrawn", chat_id=chat)
    assert withdrawn["reason"] == "expired"
    await anna.expect("error", code="no_interpreter", chat_id=chat)


async def test_an_interpreter_who_lets_requests_lapse_is_set_away_and_told(
    server: RunningServer,
) -> None:
    """As a counsellor is after missed offers: two lapses in a row (an answer in between
    starts the count again) set the interpreter away, so requests stop going to them."""
    anna, ion, _, visitor = await romanian_chat(server, offer_timeout_seconds=2)
    assert ion is not None
    chat = visitor.chat_id
    broker = server.runtime.broker

    await lapses(anna, ion, chat)
    await join(anna, ion, chat)
    await ion.send({"type": "interpreter.leave", "chat_id": chat})
    await anna.expect("interpreter.left", chat_id=chat)
    await lapses(anna, ion, chat)
    await ion.expect_none("status", within=0.3)
    presence = await broker.get_presence(ion.staff_id)
    assert presence is not None and presence.status.value == "available"

    await lapses(anna, ion, chat)
    status = await ion.expect("status", status="away")
    assert status["reason"] == "missed_offers"
    presence = await broker.get_presence(ion.staff_id)
    assert presence is not None and presence.status.value == "away"
    # Nobody is asked now: the counsellor hears at once that no interpreter is on duty.
    await anna.send({"type": "interpreter.request", "chat_id": chat})
    error = await anna.expect("error", ref="interpreter.request", chat_id=chat)
    assert error["code"] == "no_interpreter" and error["reason"] == "off_duty"
    await ion.expect_none("interpreter.offer", within=0.3)
    # Back at their desk, they set themselves available and are asked again.
    await ion.send({"type": "status", "status": "available"})
    await ion.expect("status", status="available")
    await ask(anna, ion, chat)
