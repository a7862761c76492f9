"""Risk and care (docs/risk.md): "I am in danger right now", risk levels and their alerts,
the pause after an acute chat, debriefs and the shift so far. Both brokers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.repository import AuditFilter
from app.audit.service import audit_service
from app.broker.records import PRIORITY_IN_DANGER
from app.chats.care import SHIFT_TALLY_KEEP, SHIFT_TALLY_SECONDS, Tally, tally_key
from app.kit.clock import utcnow
from app.kit.db import unit_of_work
from app.models import ChatStatistic, Debrief, StaffRole, Wrapup
from app.roster.service import roster_service
from tests.support.clients import StaffClient, VisitorClient, open_chat, open_staff, open_visitor
from tests.support.held import written
from tests.support.roster import around_now, http_as
from tests.support.seed import PASSWORD, add_counsellor, add_line, add_staff
from tests.support.server import RunningServer
from tests.support.waiting import eventually

EMERGENCY = {"sv": "Är du i fara nu, ring 112.", "en": "If you are in danger now, call 112."}
PROCEDURE = "Call the police on 112, then the duty manager."
CONTACT = "Duty manager: 070-000 00 00"

pytestmark = pytest.mark.both_brokers


async def _line(server: RunningServer, **overrides: Any) -> None:
    await add_line(
        server.runtime,
        emergency_text=EMERGENCY,
        emergency_procedure=PROCEDURE,
        emergency_contact=CONTACT,
        **overrides,
    )


async def _chat(server: RunningServer, counsellor: StaffClient) -> VisitorClient:
    visitor = await open_chat(server, counsellor)
    await visitor.expect("counsellor.joined")
    return visitor


async def test_ten_waiting_and_one_in_danger_the_next_free_counsellor_gets_that_one(
    server: RunningServer,
) -> None:
    await _line(server)
    await add_counsellor(server.runtime, "anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    first = await _chat(server, anna)
    waiting: list[VisitorClient] = []
    for _ in range(10):
        visitor = await open_visitor(server)
        await visitor.start(language="en")
        waiting.append(visitor)
    in_danger = waiting[6]
    await in_danger.send({"type": "danger"})
    noted = await in_danger.expect("danger.noted")
    # The line's emergency text, in the chat's language, at once.
    assert noted["text"] == EMERGENCY["en"]
    # A second press changes nothing more (and still shows the text).
    await in_danger.send({"type": "danger"})
    assert (await in_danger.expect("danger.noted"))["text"] == EMERGENCY["en"]
    queue = [chat_id for chat_id, _ in await server.runtime.broker.queue("support")]
    assert queue[0] == in_danger.chat_id
    # The others keep their order behind it.
    assert queue[1:] == [v.chat_id for v in waiting if v is not in_danger]
    record = await server.runtime.broker.get_chat(in_danger.chat_id)
    assert record is not None and record.in_danger and record.priority == PRIORITY_IN_DANGER

    # Anna ends her chat: her next offer is the one in danger, marked so.
    await anna.send({"type": "end", "chat_id": first.chat_id})
    offer = await anna.expect("offer")
    assert offer["chat_id"] == in_danger.chat_id and offer["in_danger"] is True
    opened = await anna.accept(in_danger.chat_id)
    assert opened["in_danger"] is True
    # Pressed again in the chat: the counsellor is told; the queue is not touched.
    await in_danger.expect("counsellor.joined")
    await in_danger.send({"type": "danger"})
    await in_danger.expect("danger.noted")

    # Counted anonymously: the statistics row says so, and nothing else about the chat.
    await anna.send({"type": "end", "chat_id": in_danger.chat_id})
    await in_danger.expect("chat.ended")
    rows: list[ChatStatistic] = []

    async def both_chats_counted() -> bool:
        # The visitor may hear of the end before the chat's row is held.
        nonlocal rows
        await written(server.runtime)
        async with unit_of_work(server.runtime.sessionmaker) as session:
            rows = list((await session.execute(select(ChatStatistic))).scalars().all())
        return len(rows) >= 2

    await eventually(both_chats_counted, what="both chats' statistics rows")
    assert sorted((r.in_danger, r.risk) for r in rows) == [(False, "none"), (True, "none")]


async def test_in_danger_while_active_tells_the_counsellor(server: RunningServer) -> None:
    await _line(server)
    await add_counsellor(server.runtime, "anna")
    anna = await open_staff(server, "anna", PASSWORD)
    visitor = await _chat(server, anna)
    await visitor.send({"type": "danger"})
    await visitor.expect("danger.noted")
    told = await anna.expect("chat.in_danger")
    assert told["chat_id"] == visitor.chat_id


async def test_in_danger_is_rate_limited_per_client_and_raises_priority_once(
    server: RunningServer,
) -> None:
    await _line(server)
    await add_counsellor(server.runtime, "anna", capacity=1)
    anna = await open_staff(server, "anna", PASSWORD)
    await _chat(server, anna)
    visitor = await open_visitor(server)
    await visitor.start()
    for _ in range(12):
        await visitor.send({"type": "danger"})
    answers = [
        (await visitor.expect(frozenset({"danger.noted", "error"})))["type"] for _ in range(12)
    ]
    assert answers == ["danger.noted"] * 10 + ["error"] * 2
    assert visitor.seen("error")[-1]["code"] == "rate_limited"
    # A flood of connections from the same client: refused, and their chats stay ordinary.
    others = []
    for _ in range(3):
        other = await open_visitor(server)
        await other.start()
        await other.send({"type": "danger"})
        error = await other.expect("error")
        assert error["code"] == "rate_limited" and error["ref"] == "danger"
        others.append(other)
    records = await server.runtime.broker.get_chats([o.chat_id for o in others])
    assert [r.in_danger for r in records] == [False] * 3
    assert [r.priority for r in records] == [0] * 3
    # Not in a chat: the frame is refused, nothing else happens.
    idle = await open_visitor(server)
    await idle.send({"type": "danger"})
    assert (await idle.expect("error"))["code"] == "not_allowed_now"


async def _with_supervisor(
    server: RunningServer, **line: Any
) -> tuple[StaffClient, StaffClient, VisitorClient]:
    await _line(server, **line)
    await add_counsellor(server.runtime, "anna", alias="Anna")
    await add_counsellor(server.runtime, "bo", alias="Bo", supervisor=True)
    anna = await open_staff(server, "anna", PASSWORD)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    visitor = await _chat(server, anna)
    return anna, bo, visitor


async def test_acute_risk_alerts_the_supervisor_on_duty_and_shows_in_the_live_list(
    server: RunningServer,
) -> None:
    anna, bo, visitor = await _with_supervisor(server)
    chat = visitor.chat_id
    await visitor.say("he is outside the door")
    await anna.send({"type": "risk", "chat_id": chat, "level": "concern"})
    assert (await anna.expect("risk.set"))["risk"] == "concern"
    # Every tab of hers shows it.
    assert (await anna.expect("chat.risk"))["risk"] == "concern"
    await anna.send({"type": "risk", "chat_id": chat, "level": "acute"})
    done = await anna.expect("risk.set", risk="acute")
    assert done["supervisors"] == 1 and "procedure" not in done
    alert = await bo.expect("risk.alert")
    assert alert["chat_id"] == chat and alert["counsellor"]["alias"] == "Anna"
    assert alert["on_call"] is False
    await bo.send({"type": "live"})
    live = (await bo.expect("live.chats"))["chats"]
    assert [(c["chat_id"], c["risk"]) for c in live] == [(chat, "acute")]
    # Acute again alerts nobody twice.
    await anna.send({"type": "risk", "chat_id": chat, "level": "acute"})
    assert (await anna.expect("risk.set", risk="acute"))["supervisors"] == 0
    await bo.expect_none("risk.alert", within=0.5)

    # Audited, without a word of the chat.
    await written(server.runtime, at_least=4)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        entries = await audit_service.search(session, AuditFilter(chat_id=chat), limit=50, offset=0)
    risk_entries = [e for e in entries if e.action == "chat.risk_set"]
    assert sorted(e.detail["risk"] for e in risk_entries) == ["acute", "acute", "concern"]
    assert "outside" not in json.dumps([e.detail for e in entries])


async def test_with_no_supervisor_on_duty_the_on_call_is_alerted_else_the_procedure(
    server: RunningServer,
) -> None:
    await add_line(server.runtime, emergency_text=EMERGENCY)
    carl_id = await add_counsellor(
        server.runtime, "carl", alias="Carl", supervisor=True, on_duty=False
    )
    await _line(server, on_call=[carl_id])
    await add_counsellor(server.runtime, "anna", alias="Anna")
    anna = await open_staff(server, "anna", PASSWORD)
    carl = await open_staff(server, "carl", PASSWORD, available=False)
    visitor = await _chat(server, anna)
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
    done = await anna.expect("risk.set", risk="acute")
    assert (done["supervisors"], done["on_call"]) == (0, 1)
    alert = await carl.expect("risk.alert")
    assert alert["on_call"] is True and alert["chat_id"] == visitor.chat_id

    # Carl signs out: nobody to reach, so Anna reads the line's procedure and contact.
    await carl.close()
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "concern"})
    await anna.expect("risk.set", risk="concern")
    for _ in range(50):
        counts = await server.runtime.broker.connection_counts([carl_id])
        if not counts.get(carl_id):
            break
        await asyncio.sleep(0.05)
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
    done = await anna.expect("risk.set", risk="acute")
    assert (done["supervisors"], done["on_call"]) == (0, 0)
    assert done["procedure"] == {"text": PROCEDURE, "contact": CONTACT}


async def test_only_supervisors_are_on_call_and_one_who_stops_supervising_leaves_the_list(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await _line(server)
    carl_id = await add_counsellor(rt, "carl", alias="Carl", supervisor=True, on_duty=False)
    vera_id = await add_counsellor(rt, "vera", alias="Vera", on_duty=False)
    await add_counsellor(rt, "anna", alias="Anna")
    await add_staff(rt, "cora", StaffRole.coordinator)
    async with http_as(server, "cora") as cora:
        before = (await cora.get("/api/lines/support/settings")).json()
        # Someone who cannot open the Supervise screen, or nobody at all, is refused.
        for on_call, kind, says in (
            ([vera_id], "on_call_not_supervisor", "Vera does not supervise chats"),
            ([str(uuid.uuid4())], "on_call_unknown", "there is no such active staff member"),
        ):
            refused = await cora.put(
                "/api/lines/support/settings", json={**before, "on_call": [carl_id, *on_call]}
            )
            created = await cora.post(
                "/api/lines", json={**before, "key": "night", "name": "Night", "on_call": on_call}
            )
            # Said of the entry in the list, as a validation error is.
            for answer, index in ((refused, 1), (created, 0)):
                assert answer.status_code == 422, answer.text
                (problem,) = answer.json()["detail"]
                assert (problem["type"], problem["loc"], problem["msg"]) == (
                    kind,
                    ["body", "on_call", index],
                    says,
                )
        assert (await cora.get("/api/lines/support/settings")).json() == before
        assert (await cora.get("/api/lines/night/settings")).status_code == 404
        saved = await cora.put("/api/lines/support/settings", json={**before, "on_call": [carl_id]})
        assert saved.status_code == 200, saved.text

        # Carl stops supervising: he leaves the on-call list, and an acute chat reaches
        # nobody, so the counsellor reads the procedure.
        demoted = await cora.patch(f"/api/staff/{carl_id}", json={"is_supervisor": False})
        assert demoted.status_code == 200, demoted.text
        settings = (await cora.get("/api/lines/support/settings")).json()
        assert settings["on_call"] == []
        log = (await cora.get("/api/audit", params={"action": "line"})).json()["entries"]
        newest = log[0]
        assert (newest["action"], newest["detail"]) == ("line.updated", {"fields": ["on_call"]})
        # Bo, deactivated, leaves it too.
        bo_id = await add_counsellor(rt, "bo", alias="Bo", supervisor=True, on_duty=False)
        both = {**settings, "on_call": [bo_id]}
        assert (await cora.put("/api/lines/support/settings", json=both)).status_code == 200
        assert (await cora.post(f"/api/staff/{bo_id}/deactivate")).status_code == 200
        assert (await cora.get("/api/lines/support/settings")).json()["on_call"] == []

    async def reloaded() -> bool:
        line = rt.lines.get("support")
        return line is not None and line.on_call == ()

    await eventually(reloaded, what="the line reloaded")
    anna = await open_staff(server, "anna", PASSWORD)
    carl = await open_staff(server, "carl", PASSWORD, available=False)
    visitor = await _chat(server, anna)
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
    done = await anna.expect("risk.set", risk="acute")
    assert (done["supervisors"], done["on_call"]) == (0, 0)
    assert done["procedure"] == {"text": PROCEDURE, "contact": CONTACT}
    await carl.expect_none("risk.alert", within=0.5)


async def test_risk_on_a_chat_that_is_not_ones_own_is_refused_and_changes_nothing(
    server: RunningServer,
) -> None:
    anna, bo, visitor = await _with_supervisor(server)
    chat = visitor.chat_id
    # Bo supervises the line but does not answer this chat.
    await bo.send({"type": "risk", "chat_id": chat, "level": "acute"})
    error = await bo.expect("error", ref="risk")
    assert error["code"] == "not_in_chat"
    await bo.send({"type": "risk", "chat_id": "nosuchchat00", "level": "acute"})
    assert (await bo.expect("error", ref="risk"))["code"] == "not_in_chat"
    # Malformed: an unknown level, a missing chat id.
    await anna.send({"type": "risk", "chat_id": chat, "level": "extreme"})
    assert (await anna.expect("error"))["code"] == "invalid_field"
    await anna.send({"type": "risk", "level": "acute"})
    assert (await anna.expect("error"))["code"] == "invalid_field"
    await anna.send('{"type": "risk", "chat_id": ')
    assert (await anna.expect("error"))["code"] == "malformed_json"
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.risk is None
    await bo.expect_none("risk.alert", within=0.3)


async def test_risk_set_during_the_wrapup_alerts_and_lands_in_the_wrapup_row(
    server: RunningServer,
) -> None:
    # The line keeps transcripts a while: the record outlives the saved wrap-up.
    anna, bo, visitor = await _with_supervisor(server, transcript_retention_seconds=600)
    await add_counsellor(server.runtime, "dana", alias="Dana")
    dana = await open_staff(server, "dana", PASSWORD, available=False)
    chat = visitor.chat_id
    await anna.send({"type": "risk", "chat_id": chat, "level": "concern"})
    await anna.expect("risk.set", risk="concern")
    # The visitor leaves; Anna fills in the wrap-up, which shows the level so far.
    await visitor.send({"type": "end"})
    required = await anna.expect("wrapup.required", chat_id=chat)
    assert required["risk"] == "concern"

    # Only now does she judge it acute: Bo, on duty, is alerted as in a live chat, told
    # that the chat has ended.
    await anna.send({"type": "risk", "chat_id": chat, "level": "acute"})
    done = await anna.expect("risk.set", risk="acute")
    assert (done["supervisors"], done["ended"]) == (1, True)
    await anna.expect("chat.risk", risk="acute")
    alert = await bo.expect("risk.alert")
    assert (alert["chat_id"], alert["ended"], alert["counsellor"]["alias"]) == (chat, True, "Anna")
    # An acute chat is over: her pause begins and her shift counts it, once.
    paused = await anna.expect("care.paused")
    assert paused["chat_id"] == chat
    await anna.send({"type": "risk", "chat_id": chat, "level": "concern"})
    await anna.expect("risk.set", risk="concern")
    await anna.send({"type": "risk", "chat_id": chat, "level": "acute"})
    await anna.expect("risk.set", risk="acute")
    await bo.expect("risk.alert")
    await anna.send({"type": "shift"})
    assert (await anna.expect("shift"))["acute"] == 1
    # A reloaded console gets the form back with the level.
    again = await open_staff(server, "anna", PASSWORD, cookie=anna.cookie)
    assert [(w["chat_id"], w["risk"]) for w in again.hello["wrapups"]] == [(chat, "acute")]
    await again.close()

    # Nobody else may set it: not Bo who supervises the line, not Dana.
    for other in (bo, dana):
        await other.send({"type": "risk", "chat_id": chat, "level": "none"})
        assert (await other.expect("error", ref="risk"))["code"] == "not_in_chat"

    await anna.send(
        {"type": "wrapup", "chat_id": chat, "topics": ["violence"], "outcome": "referred"}
    )
    await anna.expect("wrapup.saved", chat_id=chat)
    # Saved: the level stays as the wrap-up has it.
    await anna.send({"type": "risk", "chat_id": chat, "level": "none"})
    error = await anna.expect("error", ref="risk")
    assert error["code"] == "invalid_state" and "wrap-up" in error["message"]
    record = await server.runtime.broker.get_chat(chat)
    assert record is not None and record.risk == "acute"
    # Forgotten (the retention over): refused all the same.
    await server.runtime.chats.deadlines.forget(chat)
    await anna.send({"type": "risk", "chat_id": chat, "level": "none"})
    error = await anna.expect("error", ref="risk")
    assert error["code"] == "not_in_chat" and "wrap-up" in error["message"]
    await bo.expect_none("risk.alert", within=0.3)

    # The anonymous wrap-up row has the level Anna settled on; the statistics row the one
    # the chat ended with.
    await written(server.runtime, at_least=3)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        wrapups = (await session.execute(select(Wrapup))).scalars().all()
        stats = (await session.execute(select(ChatStatistic))).scalars().all()
        entries = await audit_service.search(session, AuditFilter(chat_id=chat), limit=50, offset=0)
    assert [(w.topics, w.outcome, w.risk) for w in wrapups] == [(["violence"], "referred", "acute")]
    assert [s.risk for s in stats] == ["concern"]
    after_end = [e.detail for e in entries if e.action == "chat.risk_set" and e.detail.get("ended")]
    assert sorted((d["risk"], d["previous"]) for d in after_end) == [
        ("acute", "concern"),
        ("acute", "concern"),
        ("concern", "acute"),
    ]


async def test_after_an_acute_chat_no_offers_until_ready(server: RunningServer) -> None:
    anna, _, visitor = await _with_supervisor(server)
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
    await anna.expect("risk.set", risk="acute")
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    paused = await anna.expect("care.paused")
    assert paused["seconds"] == 600
    # A new visitor waits: Anna is free, on duty and available, yet nothing is offered.
    waiting = await open_visitor(server)
    await waiting.start()
    assert await server.runtime.router.dispatch("support") == 0
    record = await server.runtime.broker.get_chat(waiting.chat_id)
    assert record is not None and record.state.value == "queued"
    # A reloaded console still knows.
    again = await open_staff(server, "anna", PASSWORD, cookie=anna.cookie)
    assert again.hello["paused_until"] == paused["until"]
    await again.close()
    await anna.send({"type": "shift"})
    shift = await anna.expect("shift")
    assert (shift["chats"], shift["acute"], shift["debriefs"]) == (1, 1, 0)
    assert shift["paused_until"] == paused["until"]

    await anna.send({"type": "ready"})
    assert (await anna.expect("care.ready"))["reason"] == "ready"
    offer = await anna.expect("offer")
    assert offer["chat_id"] == waiting.chat_id
    # Not pausing any more: "ready" is refused.
    await anna.send({"type": "ready"})
    assert (await anna.expect("error", ref="ready"))["code"] == "invalid_state"


async def test_the_pause_ends_by_itself(server: RunningServer) -> None:
    anna, _, visitor = await _with_supervisor(server, care_pause_seconds=1)
    await anna.send({"type": "risk", "chat_id": visitor.chat_id, "level": "acute"})
    await anna.expect("risk.set")
    await anna.send({"type": "end", "chat_id": visitor.chat_id})
    await anna.expect("care.paused")
    assert (await anna.expect("care.ready"))["reason"] == "over"
    waiting = await open_visitor(server)
    await waiting.start()
    assert (await anna.expect("offer"))["chat_id"] == waiting.chat_id


async def test_debriefs_own_chats_only_and_the_supervisors_list(server: RunningServer) -> None:
    anna, bo, visitor = await _with_supervisor(server, transcript_retention_seconds=600)
    await add_counsellor(server.runtime, "dana", alias="Dana")
    dana = await open_staff(server, "dana", PASSWORD, available=False)
    chat = visitor.chat_id
    await visitor.say("I am scared")
    await anna.send({"type": "risk", "chat_id": chat, "level": "acute"})
    await anna.expect("risk.set")
    await anna.send({"type": "end", "chat_id": chat})
    await anna.expect("care.paused")

    # Another counsellor's ended chat: refused, nothing stored.
    await dana.send({"type": "debrief", "chat_id": chat})
    assert (await dana.expect("error", ref="debrief"))["code"] == "not_in_chat"
    await dana.send({"type": "debrief", "chat_id": "x"})
    assert (await dana.expect("error"))["code"] == "invalid_field"

    await anna.send({"type": "debrief", "chat_id": chat})
    assert (await anna.expect("debrief.asked"))["again"] is False
    await anna.send({"type": "debrief", "chat_id": chat})
    assert (await anna.expect("debrief.asked"))["again"] is True
    # Held with the chat's other rows until its hour is over (when it was asked would tell
    # when the chat ended): nothing in SQL yet, but the supervisors see it at once.
    async with unit_of_work(server.runtime.sessionmaker) as session:
        assert (await session.execute(select(Debrief))).scalars().all() == []

    await bo.send({"type": "debriefs"})
    listed = (await bo.expect("debriefs"))["debriefs"]
    assert [(d["line"], d["risk"], d["counsellor"]["alias"], d["transcript"]) for d in listed] == [
        ("support", "acute", "Anna", True)
    ]
    # Once the hour's batch is written: the same debrief, from SQL, listed once.
    await written(server.runtime, at_least=1)
    async with unit_of_work(server.runtime.sessionmaker) as session:
        rows = (await session.execute(select(Debrief))).scalars().all()
    assert [(str(r.id), r.line_key, r.risk, r.hour.minute) for r in rows] == [
        (listed[0]["id"], "support", "acute", 0)
    ]
    await bo.send({"type": "debriefs"})
    assert (await bo.expect("debriefs"))["debriefs"] == listed
    await bo.send({"type": "debrief.open", "debrief_id": listed[0]["id"]})
    opened = await bo.expect("debrief.opened")
    assert opened["chat_id"] == chat
    assert (await bo.expect("message", sender="visitor"))["text"] == "I am scared"
    # A counsellor cannot list them.
    await dana.send({"type": "debriefs"})
    assert (await dana.expect("error", ref="debriefs"))["code"] == "forbidden"

    await anna.send({"type": "shift"})
    shift = await anna.expect("shift")
    assert (shift["chats"], shift["acute"], shift["debriefs"]) == (1, 1, 1)

    # The transcript shredded: the debrief stays, without it.
    await server.runtime.chats.core.shred(chat)
    await bo.send({"type": "debriefs"})
    assert (await bo.expect("debriefs"))["debriefs"][0]["transcript"] is False
    await bo.send({"type": "debrief.open", "debrief_id": listed[0]["id"]})
    assert (await bo.expect("error", ref="debrief.open"))["code"] == "chat_ended"


async def _earlier(server: RunningServer, staff_id: str, kind: Tally, *hours_ago: float) -> None:
    """What the counsellor did before this test, as the broker remembers it."""
    broker = server.runtime.broker
    for hours in hours_ago:
        await broker.push_recent(
            tally_key(kind, staff_id),
            broker.now() - hours * 3600,
            SHIFT_TALLY_KEEP,
            SHIFT_TALLY_SECONDS,
        )


async def _ended_chat(server: RunningServer, counsellor: StaffClient) -> None:
    visitor = await _chat(server, counsellor)
    await counsellor.send({"type": "end", "chat_id": visitor.chat_id})
    await counsellor.expect("wrapup.required", chat_id=visitor.chat_id)


async def test_the_shift_so_far_counts_from_the_start_of_the_roster_shift(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await _line(server)
    await add_staff(rt, "ella", StaffRole.coordinator)
    anna_id = await add_counsellor(rt, "anna", on_duty=False)
    # Anna's shift began an hour and a half ago.
    async with http_as(server, "ella") as ella:
        created = await ella.post(
            "/api/roster/lines/support/extra-shifts", json={**around_now(90, 60), "needed": 1}
        )
        assert created.status_code == 201, created.text
        extra = created.json()
        assigned = await ella.post(
            "/api/roster/assignments", json={"staff_id": anna_id, "extra_shift_id": extra["id"]}
        )
        assert assigned.status_code == 201, assigned.text
    # An earlier shift today (three and two hours ago, before this one), and this one's.
    await _earlier(server, anna_id, Tally.chats, 3, 2, 0.5)
    await _earlier(server, anna_id, Tally.acute, 3)
    await _earlier(server, anna_id, Tally.debriefs, 2)
    anna = await open_staff(server, "anna", PASSWORD)
    await _ended_chat(server, anna)

    await anna.send({"type": "shift"})
    shift = await anna.expect("shift")
    assert (shift["chats"], shift["acute"], shift["debriefs"]) == (2, 0, 0)
    assert (shift["basis"], shift["on_duty"]) == ("shift", True)
    # From the shift's start, widened as duty is (LYKTA_DUTY_BEFORE_MINUTES).
    widened = rt.settings.duty_before_minutes * 60
    assert shift["since"] == datetime.fromisoformat(extra["starts_at"]).timestamp() - widened
    assert shift["since"] == anna.hello["lines"][0]["on_duty_since"]


async def test_the_shift_so_far_off_the_roster_counts_from_ad_hoc_duty_else_the_last_12_hours(
    server: RunningServer,
) -> None:
    rt = server.runtime
    await _line(server)
    # Put on duty by a coordinator just now (the test seed's way): from then on.
    anna_id = await add_counsellor(rt, "anna")
    await _earlier(server, anna_id, Tally.chats, 1)
    anna = await open_staff(server, "anna", PASSWORD)
    await _ended_chat(server, anna)
    await anna.send({"type": "shift"})
    shift = await anna.expect("shift")
    assert (shift["chats"], shift["basis"], shift["on_duty"]) == (1, "ad_hoc", True)
    assert shift["since"] == anna.hello["lines"][0]["on_duty_since"]
    assert time.time() - 120 < shift["since"] <= time.time()

    # Not on duty: the last 12 hours, and the frame says so.
    bo_id = await add_counsellor(rt, "bo", on_duty=False)
    await _earlier(server, bo_id, Tally.chats, 13, 3)
    await _earlier(server, bo_id, Tally.debriefs, 3)
    bo = await open_staff(server, "bo", PASSWORD, available=False)
    await bo.send({"type": "shift"})
    shift = await bo.expect("shift")
    assert (shift["chats"], shift["debriefs"]) == (1, 1)
    assert (shift["basis"], shift["hours"], shift["on_duty"]) == ("hours", 12, False)
    assert time.time() - 12 * 3600 - 60 < shift["since"] <= time.time() - 12 * 3600

    # On ad hoc duty for 14 hours: as far back as the broker keeps, the last 12 hours.
    cleo_id = await add_counsellor(rt, "cleo", on_duty=False)
    async with unit_of_work(rt.sessionmaker) as session:
        await roster_service.add_duty(
            session,
            staff_id=uuid.UUID(cleo_id),
            line_key="support",
            until=utcnow() + timedelta(hours=1),
            by=None,
            now=utcnow() - timedelta(hours=14),
        )
    await _earlier(server, cleo_id, Tally.chats, 13, 1)
    cleo = await open_staff(server, "cleo", PASSWORD, available=False)
    await cleo.send({"type": "shift"})
    shift = await cleo.expect("shift")
    assert (shift["chats"], shift["basis"], shift["on_duty"]) == (1, "hours", True)
